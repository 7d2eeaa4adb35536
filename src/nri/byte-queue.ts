/**
 * A queue of received chunks that lets a parser peek at a header, check the
 * length it claims, and only then take the bytes: nothing is copied until a
 * whole frame is present, and a frame that sits in one chunk is a zero-copy
 * view of it.
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The first `n` bytes without consuming them (n ≤ length). */
  peek(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`Cannot peek ${n} bytes: only ${this.#length} queued`);
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    return this.#gather(n, false);
  }

  /** Removes and returns the first `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`Cannot take ${n} bytes: only ${this.#length} queued`);
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      this.#dropFront(n);
      return first.subarray(0, n);
    }
    return this.#gather(n, true);
  }

  /** Drops up to `n` bytes; returns how many were dropped. */
  discard(n: number): number {
    const dropped = Math.min(n, this.#length);
    let left = dropped;
    for (const chunk of [...this.#chunks]) {
      if (left === 0) break;
      const k = Math.min(left, chunk.length);
      this.#dropFront(k);
      left -= k;
    }
    return dropped;
  }

  #dropFront(n: number): void {
    const first = this.#chunks[0];
    if (first === undefined) return;
    if (n === first.length) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#length -= n;
  }

  #gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const chunk of this.#chunks) {
      if (filled === n) break;
      const k = Math.min(n - filled, chunk.length);
      chunk.copy(out, filled, 0, k);
      filled += k;
    }
    if (consume) this.discard(n);
    return out;
  }
}
