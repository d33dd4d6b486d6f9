import { describe, expect, it } from 'vitest';
import { states } from '../../src/index.js';

describe('states', () => {
  it('groups ready and propagating states as Celery does', () => {
    expect([...states.READY_STATES].sort()).toEqual(['FAILURE', 'REVOKED', 'SUCCESS']);
    expect([...states.PROPAGATE_STATES].sort()).toEqual(['FAILURE', 'REVOKED']);
    expect(states.isReady('STARTED')).toBe(false);
    expect(states.isReady('RETRY')).toBe(false);
  });

  it('orders states by Celery precedence, unknown states in the middle', () => {
    const order = ['PENDING', 'RETRY', 'STARTED', 'SUCCESS', 'FAILURE', 'CUSTOM', 'REVOKED'];
    const sorted = [...order].sort((a, b) => states.precedence(a) - states.precedence(b));
    expect(sorted).toEqual(['SUCCESS', 'FAILURE', 'CUSTOM', 'REVOKED', 'STARTED', 'RETRY', 'PENDING']);
  });
});
