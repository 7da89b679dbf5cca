import type { ComponentMetrics } from '../../core/metrics.ts';

/** The file source's own metrics, bound to the component once at build time. */
export class FileMetrics {
  readonly discovered;
  readonly released;
  readonly rotated;
  readonly deleted;
  readonly truncations;
  readonly copiesSkipped;
  readonly tooLong;
  readonly invalidUtf8;
  readonly partialFlushed;
  readonly groupsSplit;
  readonly failedBatches;
  readonly rewinds;
  readonly checkpointWrites;
  readonly openFiles;
  readonly trackedFiles;

  constructor(m: ComponentMetrics) {
    this.discovered = m.counter('fluxo_file_source_files_discovered_total', 'Files the file source started tailing.');
    this.released = m.counter(
      'fluxo_file_source_files_released_total',
      'Files finished and closed after they left their path (rotated away or deleted).',
    );
    this.rotated = m.counter(
      'fluxo_file_source_rotations_total',
      'Files that left their path by a rename (rename + create rotation): read to their end before release.',
    );
    this.deleted = m.counter('fluxo_file_source_deletions_total', 'Files deleted while being tailed.');
    this.truncations = m.counter(
      'fluxo_file_source_truncations_total',
      'Files found shorter than what was read, or with new first bytes (copytruncate, truncation in place).',
    );
    this.copiesSkipped = m.counter(
      'fluxo_file_source_copies_skipped_total',
      'Files not read because they start like a file being read (a copy of it).',
    );
    this.tooLong = m.counter(
      'fluxo_file_source_lines_too_long_total',
      'Lines longer than max_line_bytes (dropped to the dead letter output, or split).',
    );
    this.invalidUtf8 = m.counter(
      'fluxo_file_source_invalid_utf8_lines_total',
      'Lines with invalid UTF-8, kept with U+FFFD replacement characters.',
    );
    this.partialFlushed = m.counter(
      'fluxo_file_source_partial_lines_flushed_total',
      'Lines without a newline emitted after partial_line_timeout, or at the end of a released file.',
    );
    this.groupsSplit = m.counter(
      'fluxo_file_source_multiline_groups_split_total',
      'Multiline groups emitted early because they reached multiline.max_bytes.',
    );
    this.failedBatches = m.counter(
      'fluxo_file_source_failed_batches_total',
      'Batches settled as failed (not delivered); their checkpoint does not move past them.',
    );
    this.rewinds = m.counter(
      'fluxo_file_source_rewinds_total',
      'Times a file was read again from a batch that was not delivered.',
    );
    this.checkpointWrites = m.counter('fluxo_file_source_checkpoint_writes_total', 'Checkpoint files written.');
    this.openFiles = m.gauge('fluxo_file_source_open_files', 'Files the file source holds open.');
    this.trackedFiles = m.gauge('fluxo_file_source_tracked_files', 'Files the file source is tailing.');
  }
}
