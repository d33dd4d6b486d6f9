import type { MemoryBroker } from '../../src/transports/memory/memory-broker.js';
import { describeMonitorConformance } from './monitor-suite.js';
import { openBroker } from './open.js';

let broker: MemoryBroker | undefined;
describeMonitorConformance(
  'memory://',
  async () => (broker = (await openBroker('memory://monitor-conformance')) as MemoryBroker),
  {
    sendMalformedEvent: 'memory:// hands events over as objects, never as bytes: nothing malformed can reach its stream',
    inboxLeftovers: async (address) => broker!.namespace.inboxes.has(address.routingKey),
    replaysCommands: true,
  },
);
