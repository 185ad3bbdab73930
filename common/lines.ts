/**
 * Newline-delimited text (NDJSON streams: device logs, Docker's pull progress) arrives in chunks
 * cut anywhere, so a line may span chunks. `push` returns the lines a chunk completes and keeps the
 * unfinished tail for the next one; `rest` hands over that tail when the stream ends.
 */
export class LineBuffer {
  private tail = '';

  push(chunk: string): string[] {
    const parts = (this.tail + chunk).split('\n');
    this.tail = parts.pop() ?? '';
    return parts;
  }

  rest(): string {
    const r = this.tail;
    this.tail = '';
    return r;
  }
}
