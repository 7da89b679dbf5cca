import { z } from 'zod';
import { multilineOptions } from '../codecs/multiline.ts';
import { defineSource } from '../core/component.ts';
import { duration, size } from '../core/units.ts';
import { FileTailSource } from './file/tail-source.ts';

const options = z.object({
  include: z
    .array(z.string().min(1))
    .min(1)
    .describe(
      'Glob patterns of the files to read, e.g. `/var/log/app/*.log` or `/var/log/**/access.log` (relative ones from ' +
        'the working directory). New files are picked up while running. A `.gz` file is read (decompressed, once) ' +
        'only when the pattern that matches it ends in `.gz`.',
    ),
  exclude: z
    .array(z.string().min(1))
    .default([])
    .describe(
      'Glob patterns of files not to read, matched against the absolute path, e.g. `/var/log/app/debug-*.log`.',
    ),
  read_from: z
    .enum(['beginning', 'end'])
    .default('beginning')
    .describe(
      'Where to start in a file found at start-up that has no checkpoint. Files that appear later are always read ' +
        'from their beginning (they are new), and a file with a checkpoint resumes there.',
    ),
  ignore_older_than: duration()
    .default(0)
    .describe(
      'A file without a checkpoint, not modified for this long when found, is read from its end: only lines added ' +
        'later are collected. Default 0: off.',
    ),
  fingerprint: z
    .object({
      strategy: z
        .enum(['checksum', 'device_and_inode'])
        .default('checksum')
        .describe(
          '`checksum`: a file is known by a checksum of its first `bytes` bytes (survives renames and moves, not ' +
            'fooled by a reused inode); a file still shorter is known by device + inode + birth time and the ' +
            'checksum of what it has. `device_and_inode`: by device, inode and birth time only.',
        ),
      bytes: size()
        .default(256)
        .describe(
          'How many first bytes the checksum covers. Files whose first lines are identical (a common header) need more.',
        ),
    })
    .default({ strategy: 'checksum', bytes: 256 })
    .describe(
      'How a file is recognised across renames and restarts: `{ strategy, bytes }`. `strategy: checksum` (default): by a ' +
        'checksum of its first `bytes` bytes (default 256), so renames and moves are followed and a reused inode is not ' +
        'mistaken for the old file; a file still shorter is known by device + inode + birth time and the checksum of ' +
        'what it has. `strategy: device_and_inode`: by device, inode and birth time only.',
    ),
  checkpoint_interval: duration()
    .default(1000)
    .describe(
      'Most time between two writes of the checkpoints (`<data_dir>/file_source/<id>/checkpoints.json`); they are ' +
        'also written at shutdown. A crash reads again at most what was acknowledged in this interval (same `_id`s). ' +
        'Default 1s.',
    ),
  glob_interval: duration()
    .default(1000)
    .describe(
      'How often the globs are evaluated again for new, renamed and deleted files (file system notifications ' +
        'usually make it sooner). Default 1s.',
    ),
  poll_interval: duration()
    .default(250)
    .describe('How often a file at its end is checked for new lines when no notification came. Default 250ms.'),
  rotate_wait: duration()
    .default(5000)
    .describe(
      'A file renamed out of the globs or deleted is read to its end and kept open until it has not grown for this ' +
        'long (a writer may still append to it after a rotation), then released. Default 5s.',
    ),
  max_line_bytes: size()
    .default(100 * 1024)
    .describe('Longest line in bytes (`\\n` excluded); see `overlong_lines`. Default 100KiB.'),
  overlong_lines: z
    .enum(['drop', 'split'])
    .default('drop')
    .describe(
      '`drop`: a line longer than `max_line_bytes` goes to the dead letter output as its first KiB with its size. ' +
        '`split`: it becomes several events of at most `max_line_bytes` each. Counted in ' +
        '`fluxo_file_source_lines_too_long_total` either way.',
    ),
  partial_line_timeout: duration()
    .default(0)
    .describe(
      'Emit the last line of a file that has no newline yet once the file has not grown for this long. Default 0: wait ' +
        'for the newline (a rotated or deleted file still gets its last line emitted when released).',
    ),
  max_open_files: z
    .number()
    .int()
    .positive()
    .default(256)
    .describe(
      'Most files kept open; beyond that the least recently grown files are closed and reopened when they grow ' +
        '(files being finished after a rotation are never closed early).',
    ),
  max_read_bytes: size()
    .default(256 * 1024)
    .describe(
      'Most bytes read from one file at a time (one batch) before turning to the next file with new data. Default 256KiB.',
    ),
  multiline: multilineOptions().optional(),
});

export type FileSourceOptions = z.infer<typeof options>;

export const fileSource = defineSource({
  kind: 'source',
  type: 'file',
  description:
    'Tails log files matched by globs, across rotation (rename or copytruncate), truncation and restarts, with checkpoints advanced only by acknowledged lines.',
  options,
  example: [
    'sources:',
    '  app_files:',
    '    type: file',
    '    include: ["/var/log/app/*.log"]',
    '    exclude: ["/var/log/app/debug.log"]',
    '    multiline:                       # Java stack traces: one event per exception',
    '      start_pattern: "^[^\\\\s]"',
    '      condition_pattern: "^\\\\s+(at |\\\\.\\\\.\\\\. \\\\d+ more)|^Caused by:"',
    '      mode: continue_through',
    '      timeout: 1s',
  ].join('\n'),
  build: (opts, ctx) => new FileTailSource(opts, ctx),
});
