/**
 * Reading back the Python-style reprs that task events carry as `args` and `kwargs` (Celery's
 * argsrepr/kwargsrepr, celeriac's `pythonRepr`): lists, tuples, dicts, strings, numbers,
 * True/False/None. The dashboard's "retry" sends a task again with the arguments read this way;
 * a repr Celery truncated (ending in `...`) or one holding anything else is refused.
 */

/** The value a repr shows; throws a plain sentence when it cannot be read back. */
export function parsePythonLiteral(text: string): unknown {
  const parser = new Parser(text);
  const value = parser.value();
  parser.end();
  return value;
}

class Parser {
  #at = 0;

  constructor(private readonly text: string) {}

  end(): void {
    this.#space();
    if (this.#at !== this.text.length) this.#fail('unexpected text');
  }

  value(): unknown {
    this.#space();
    const char = this.text[this.#at];
    if (char === '[' || char === '(') return this.#sequence(char === '[' ? ']' : ')');
    if (char === '{') return this.#dict();
    if (char === "'" || char === '"') return this.#string();
    if (char === 'b' && (this.text[this.#at + 1] === "'" || this.text[this.#at + 1] === '"')) this.#fail('bytes cannot be sent again from here');
    for (const [word, value] of [['True', true], ['False', false], ['None', null]] as const) {
      if (this.text.startsWith(word, this.#at)) {
        this.#at += word.length;
        return value;
      }
    }
    const number = /^-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)/.exec(this.text.slice(this.#at));
    if (number) {
      this.#at += number[0].length;
      const literal = number[0];
      if (literal.endsWith('inf') || literal === 'nan') this.#fail('inf and nan have no JSON form');
      return Number(literal);
    }
    if (this.text.startsWith('...', this.#at)) this.#fail('the arguments were cut short when the event was sent');
    return this.#fail('not a literal');
  }

  #sequence(close: string): unknown[] {
    this.#at++;
    const items: unknown[] = [];
    for (;;) {
      this.#space();
      if (this.text[this.#at] === close) {
        this.#at++;
        return items;
      }
      items.push(this.value());
      this.#space();
      if (this.text[this.#at] === ',') this.#at++;
      else if (this.text[this.#at] !== close) this.#fail(`expected , or ${close}`);
    }
  }

  #dict(): Record<string, unknown> {
    this.#at++;
    const dict: Record<string, unknown> = {};
    for (;;) {
      this.#space();
      if (this.text[this.#at] === '}') {
        this.#at++;
        return dict;
      }
      const key = this.value();
      if (typeof key !== 'string') this.#fail('only text keys have a JSON form');
      this.#space();
      if (this.text[this.#at] !== ':') this.#fail('expected :');
      this.#at++;
      Object.defineProperty(dict, key as string, { value: this.value(), enumerable: true, writable: true, configurable: true });
      this.#space();
      if (this.text[this.#at] === ',') this.#at++;
      else if (this.text[this.#at] !== '}') this.#fail('expected , or }');
    }
  }

  #string(): string {
    const quote = this.text[this.#at++]!;
    let out = '';
    for (;;) {
      const char = this.text[this.#at++];
      if (char === undefined) this.#fail('unterminated string');
      if (char === quote) return out;
      if (char !== '\\') {
        out += char;
        continue;
      }
      const escape = this.text[this.#at++];
      const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
      if (escape !== undefined && escape in simple) out += simple[escape];
      else if (escape === 'x' || escape === 'u' || escape === 'U') {
        const length = escape === 'x' ? 2 : escape === 'u' ? 4 : 8;
        const hex = this.text.slice(this.#at, this.#at + length);
        if (!/^[\da-fA-F]+$/.test(hex) || hex.length !== length) this.#fail('bad escape');
        out += String.fromCodePoint(Number.parseInt(hex, 16));
        this.#at += length;
      } else this.#fail('bad escape');
    }
  }

  #space(): void {
    while (this.#at < this.text.length && /\s/.test(this.text[this.#at]!)) this.#at++;
  }

  #fail(why: string): never {
    throw new Error(`cannot read the arguments back (${why} at character ${this.#at + 1})`);
  }
}
