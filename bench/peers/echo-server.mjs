// The machine's floor for the enqueue→start figures of bench/separate.ts: a TCP echo server on
// 127.0.0.1 in a process of its own. It prints the port it listens on, then sends every chunk back.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk) => socket.write(chunk));
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
