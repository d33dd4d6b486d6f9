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
    // memory-broker.ts replays every command it keeps; filtering its replay with replayable()
    // (src/brokers/control-log.ts), as sqlite:// does, makes this `true`.
    replaysCommands: 'memory:// replays every command it keeps, requests and expired ones too',
  },
);
