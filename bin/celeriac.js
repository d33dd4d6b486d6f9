#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// Output piped into `head` and the like: stop quietly when the reader goes away.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

// Exit once the command is done, even if a task module keeps handles open (a client, a timer).
process.exit(await main(process.argv.slice(2)));
