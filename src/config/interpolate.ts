export interface InterpolationProblem {
  message: string;
  /** Offset in the original text of the `${…}` that could not be resolved. */
  offset: number;
}

const PATTERN = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in the config text before it is parsed, as Vector and Fluent Bit
 * do, so a variable works anywhere a value can stand (flow maps, unquoted scalars). `$$` is a literal `$`.
 * Comment lines are left alone. Line numbers of later errors stay right unless a value holds a newline.
 */
export function interpolateText(
  text: string,
  env: NodeJS.ProcessEnv,
): { text: string; problems: InterpolationProblem[] } {
  const problems: InterpolationProblem[] = [];
  if (!text.includes('$')) return { text, problems };
  let offset = 0;
  const lines = text.split('\n').map((line) => {
    const start = offset;
    offset += line.length + 1;
    if (!line.includes('$') || /^\s*#/.test(line)) return line;
    return line.replace(PATTERN, (whole, name: string | undefined, fallback: string | undefined, at: number) => {
      if (whole === '$$') return '$';
      const value = env[name!];
      if (value !== undefined && (value !== '' || fallback === undefined)) return value;
      if (fallback !== undefined) return fallback;
      problems.push({
        message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
        offset: start + at,
      });
      return whole;
    });
  });
  return { text: lines.join('\n'), problems };
}
