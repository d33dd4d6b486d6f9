/**
 * Argument schemas through Standard Schema, the interface zod, valibot and arktype (among
 * others) implement: a schema carries `~standard.validate`, which returns the parsed value or a
 * list of issues, now or as a promise. celeriac depends on no schema library.
 */
import { InvalidArguments } from './errors.js';

/** One problem a schema found: a message and, optionally, where. */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** What `validate` returns: the parsed value, or the issues. */
export type SchemaResult<Output> = { readonly value: Output; readonly issues?: undefined } | { readonly issues: ReadonlyArray<SchemaIssue> };

/** A Standard Schema (version 1) whose parsed output is `Output`. */
export interface StandardSchema<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => SchemaResult<Output> | Promise<SchemaResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/**
 * Runs a task's argument schema: resolves with the parsed arguments, or rejects with
 * {@link InvalidArguments} quoting the schema's own messages.
 */
export async function parseArguments(taskName: string, schema: StandardSchema<unknown, unknown[]>, args: unknown[]): Promise<unknown[]> {
  const result = await schema['~standard'].validate(args);
  if (result.issues) {
    throw new InvalidArguments(`${taskName} rejected its arguments: ${result.issues.map(describeIssue).join('; ')}`);
  }
  return result.value;
}

function describeIssue(issue: SchemaIssue): string {
  const path = issue.path?.map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}
