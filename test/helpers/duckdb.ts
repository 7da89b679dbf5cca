import { DuckDBInstance } from '@duckdb/node-api';

/** Runs `sql` in a fresh in-memory DuckDB and returns the rows as JSON values (BIGINT as strings). */
export async function duckQuery(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** A string literal for SQL. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
