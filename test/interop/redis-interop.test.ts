import { describeCeleryInterop, expectPythonCelery } from './celery-interop-suite.js';

const REDIS = 'redis://127.0.0.1:6379/6';

// kombu's Redis transport serves priority 0 first.
describeCeleryInterop('Redis', {
  broker: REDIS,
  backend: REDIS,
  pythonBroker: REDIS,
  pythonBackend: REDIS,
  priorities: { low: 9, high: 0 },
  shortVisibilityBroker: `${REDIS}?visibility_timeout=2`,
});
expectPythonCelery();
