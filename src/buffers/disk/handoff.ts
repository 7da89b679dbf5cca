/** The claim of the buffer that owns each directory in this process. */
const owners = new Map<string, DirectoryClaim>();

/**
 * A disk buffer's claim on its directory within this process, for a reload: the reloaded sink builds its new
 * buffer before the old one has stopped, so the new one waits for the old one to close and then replays what it
 * left. (Between processes the directory's lock file decides; see lock.ts.)
 */
export class DirectoryClaim {
  /** A newer buffer of the same directory waits for this one to close. */
  superseded = false;

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
  claim(): Promise<void> | undefined {
    const previous = owners.get(this.dir);
    owners.set(this.dir, this);
    if (!previous || previous === this) return undefined;
    previous.superseded = true;
    previous.onSuperseded();
    return previous.closed;
  }

  /** The buffer closed (or could not open): the directory is free for the next one. */
  release(): void {
    if (owners.get(this.dir) === this) owners.delete(this.dir);
  }
}
