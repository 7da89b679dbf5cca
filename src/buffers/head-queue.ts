/** Taken slots are dropped from the array once there are more of them than this and than items left. */
const COMPACT_AFTER = 1024;

/**
 * A FIFO over an array with a moving head, for the buffers' queues: shift() is O(1) and clears the slot it
 * leaves, so an item taken out is not kept alive by the array; the array is compacted once the taken slots
 * outnumber both COMPACT_AFTER and the items left (or all of them are taken).
 */
export class HeadQueue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The item `i` places from the head (0: the head), undefined past the end. */
  at(i: number): T | undefined {
    return this.items[this.head + i];
  }

  /** Takes the head out; undefined when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > COMPACT_AFTER && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Takes everything out, in order. */
  clear(): T[] {
    const rest = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return rest;
  }
}
