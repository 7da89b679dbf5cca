import { ParseFailure } from './parser.ts';

/** JSON text to a value. Any JSON value is returned; callers that need an object check for one. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // SyntaxError for bad JSON, RangeError for nesting deeper than the stack: both are bad input.
    return new ParseFailure(`invalid JSON: ${(error as Error).message.split('\n')[0]}`);
  }
}
