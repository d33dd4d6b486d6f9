/** Spans as the tests read them: from an in-memory exporter, or from JSON lines a worker process wrote. */
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** What a test checks of a span. */
export interface SpanRecord {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  links: string[];
  attributes: Record<string, unknown>;
  status: number;
}

export function spanRecord(span: ReadableSpan): SpanRecord {
  const context = span.spanContext();
  return {
    name: span.name,
    kind: span.kind,
    traceId: context.traceId,
    spanId: context.spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    links: span.links.map((link) => link.context.spanId),
    attributes: { ...span.attributes },
    status: span.status.code,
  };
}
