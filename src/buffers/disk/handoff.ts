/** The claim of the buffer that owns each directory in this process. */
const owners = new Map<string, DirectoryClaim>();

/**
 * A disk buffer's claim on its directory within this process, for a reload: the reloaded sink builds its new
 * buffer before the old one has stopped, so the new one waits for the old one to close and then replays what it
 * left, starting from the old one's final acknowledged position, handed over with the directory (the ledger on
 * disk says the same unless its last write failed). (Between processes the directory's lock file decides; see
 * lock.ts.)
 */
export class DirectoryClaim {
  /** A newer buffer of the same directory waits for this one to close. */
  superseded = false;
  /** The acknowledged position this buffer closed with: where its successor starts. */
  private finalAckedId: number | undefined;

  constructor(
    private readonly dir: string,
    /** Resolves once the buffer closed its files. */
    private readonly closed: Promise<void>,
    /** Called once a newer buffer claims the directory. */
    private readonly onSuperseded: () => void,
  ) {}

  /**
   * Takes the directory over. Returns when the previous owner in this process closes, if one still runs: the
   * buffer opens its files only then.
   */
  claim(): Promise<number | undefined> | undefined {
    const previous = owners.get(this.dir);
    owners.set(this.dir, this);
    if (!previous || previous === this) return undefined;
    previous.superseded = true;
    previous.onSuperseded();
    return previous.closed.then(() => previous.finalAckedId);
  }

  /**
   * The buffer closed (or could not open): the directory is free for the next one, which starts from
   * `ackedId` when given (the position the closing buffer ended with, its ledger written).
   */
  release(ackedId?: number): void {
    if (ackedId !== undefined) this.finalAckedId = ackedId;
    if (owners.get(this.dir) === this) owners.delete(this.dir);
  }
}
