/** Routing a call to its destination, as Celery's task_routes and task_queues do. */
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../src/index.js';
import { exchangeOptionsFor, Router } from '../../src/routing.js';

const router = new Router(
  {
    'images.resize': { queue: 'images', routingKey: 'image.resize' },
    'images.*': { queue: 'images' },
    'feeds.*': { exchange: 'feeds', routingKey: 'feed.update' },
  },
  [{ name: 'images', exchange: 'media', exchangeType: 'topic', routingKey: 'image.#' }],
  'celery',
);

describe('Router', () => {
  it('puts the call first, then the first matching route, then the task queue, then the default', () => {
    expect(router.resolve('misc.add', {}, undefined)).toEqual({ queue: 'celery' });
    expect(router.resolve('misc.add', {}, 'math')).toEqual({ queue: 'math' });
    expect(router.resolve('misc.add', { queue: 'urgent' }, 'math')).toEqual({ queue: 'urgent' });
    expect(router.resolve('images.crop', {}, 'math').queue).toBe('images');
    expect(router.resolve('images.crop', { queue: 'urgent' }, undefined)).toEqual({ queue: 'urgent' });
  });

  it('reaches a queue declared on an exchange through that exchange, with the route\'s or the declaration\'s key', () => {
    expect(router.resolve('images.resize', {}, undefined)).toEqual({ queue: 'images', exchange: 'media', routingKey: 'image.resize', exchangeIsQueues: true });
    expect(router.resolve('images.crop', {}, undefined)).toEqual({ queue: 'images', exchange: 'media', routingKey: 'image.#', exchangeIsQueues: true });
    expect(router.resolve('misc.add', { exchange: 'media', routingKey: 'image.add', queue: 'images' }, undefined)).toEqual({ queue: 'images', exchange: 'media', routingKey: 'image.add' });
  });

  it('matches * patterns only as whole names, with dots taken literally', () => {
    expect(router.resolve('feeds.refresh', {}, undefined)).toEqual({ queue: 'celery', exchange: 'feeds', routingKey: 'feed.update' });
    expect(router.resolve('feedsXrefresh', {}, undefined)).toEqual({ queue: 'celery' });
    expect(router.resolve('old.feeds.refresh', {}, undefined)).toEqual({ queue: 'celery' });
  });
});

describe('exchangeOptionsFor', () => {
  const rabbit = { capabilities: { exchanges: true }, displayUrl: 'amqp://127.0.0.1:5672//' };
  const redis = { capabilities: { exchanges: false }, displayUrl: 'redis://127.0.0.1:6379/0' };

  it('publishes through the exchange where the broker has exchanges', () => {
    expect(exchangeOptionsFor(router.resolve('images.crop', {}, undefined), rabbit)).toEqual({ exchange: 'media', routingKey: 'image.#' });
    expect(exchangeOptionsFor(router.resolve('misc.add', {}, undefined), rabbit)).toEqual({});
  });

  it('reaches a declared queue by name on a broker without exchanges, and refuses a named exchange there', () => {
    expect(exchangeOptionsFor(router.resolve('images.crop', {}, undefined), redis)).toEqual({});
    expect(() => exchangeOptionsFor(router.resolve('feeds.refresh', {}, undefined), redis)).toThrow(
      new ConfigurationError('cannot publish through exchange "feeds": redis://127.0.0.1:6379/0 routes by queue name only (exchanges need an amqp:// broker); send to a queue instead'),
    );
  });
});
