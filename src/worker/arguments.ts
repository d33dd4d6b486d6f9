/** Fitting a message's args and kwargs onto a task handler's parameters. */
import { InvalidArguments } from '../errors.js';
import type { Task } from '../task.js';

/** The positional arguments to call the handler with, and the keyword arguments left over. */
export interface FittedArguments {
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/**
 * Maps kwargs onto named positions (when the task declares `params`), checks the count against
 * the handler's required parameters, and runs the task's `validate`.
 *
 * @throws {@link InvalidArguments} saying what does not fit.
 */
export function fitArguments(task: Task<never, unknown>, args: unknown[], kwargs: Record<string, unknown>): FittedArguments {
  let positional = args;
  let rest = kwargs;
  const params = task.options.params;
  if (params) {
    if (args.length > params.length) {
      throw new InvalidArguments(`${task.name} takes ${params.length} positional arguments but ${args.length} were given`);
    }
    positional = [...args];
    rest = {};
    for (const [key, value] of Object.entries(kwargs)) {
      const index = params.indexOf(key);
      if (index === -1) throw new InvalidArguments(`${task.name} got an unexpected keyword argument ${JSON.stringify(key)}`);
      if (index < args.length) throw new InvalidArguments(`${task.name} got multiple values for argument ${JSON.stringify(key)}`);
      positional[index] = value;
    }
    for (let i = 0; i < positional.length; i++) {
      if (!(i in positional)) throw new InvalidArguments(`${task.name} is missing argument ${JSON.stringify(params[i])}`);
    }
  }
  const required = Math.max(0, task.handler.length - 1); // the context comes first
  if (positional.length < required) {
    throw new InvalidArguments(`${task.name} needs ${required} positional arguments but ${positional.length} were given`);
  }
  const validate = task.options.validate as ((args: unknown[]) => unknown[] | void) | undefined;
  if (validate) {
    try {
      positional = validate(positional) ?? positional;
    } catch (error) {
      throw new InvalidArguments(`${task.name} rejected its arguments: ${(error as Error).message ?? String(error)}`, { cause: error });
    }
  }
  return { args: positional, kwargs: rest };
}
