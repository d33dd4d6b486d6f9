/** A one-line progress bar for terminals; plain lines when output is not a terminal. */

/** Renders progress of `total` steps to a stream. */
export class ProgressBar {
  #done = 0;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly lines: NodeJS.WriteStream = process.stdout,
  ) {}

  /** Marks one more step done and redraws. */
  tick(): void {
    this.#done = Math.min(this.total, this.#done + 1);
    this.#draw();
  }

  /** Prints a line (to standard output) above the bar without breaking it. */
  log(line: string): void {
    if (this.stream.isTTY) this.stream.write('\r\x1b[2K');
    this.lines.write(`${line}\n`);
    if (this.stream.isTTY) this.#draw();
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }

  #draw(): void {
    const width = 30;
    const filled = this.total === 0 ? width : Math.round((this.#done / this.total) * width);
    const bar = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.total}`;
    if (this.stream.isTTY) this.stream.write(`\r\x1b[2K${bar}`);
    else if (this.#done === this.total) this.stream.write(`${bar}\n`);
  }
}
