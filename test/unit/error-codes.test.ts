import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { renderErrorsDoc } from '../../src/config/docs.ts';
import { type ErrorCodeEntry, errorCatalogue } from '../../src/core/error-codes.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const SRC = join(ROOT, 'src');
const CATALOGUE_FILE = 'src/core/error-codes.ts';
const CODE = /^FLUXO_[A-Z0-9_]+$/;

interface SourceFile {
  readonly path: string;
  readonly text: string;
}

interface CodeUse {
  readonly code: string;
  readonly where: string;
}

/** Every string literal that is an error code (`'FLUXO_…'` as a whole), with file and line; comments do not count. */
function codeLiterals(file: SourceFile): CodeUse[] {
  const source = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const uses: CodeUse[] = [];
  const visit = (node: ts.Node): void => {
    // An environment variable named for commander (`.env('FLUXO_API_TOKEN')`) is not an error code.
    const parent = node.parent;
    const envName =
      parent !== undefined &&
      ts.isCallExpression(parent) &&
      ts.isPropertyAccessExpression(parent.expression) &&
      parent.expression.name.text === 'env';
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE.test(node.text) && !envName) {
      const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
      uses.push({ code: node.text, where: `${file.path}:${line}` });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return uses;
}

/** What is wrong between the sources and the catalogue; every list empty when they agree. */
function checkCatalogue(files: readonly SourceFile[], catalogue: Readonly<Record<string, ErrorCodeEntry>>) {
  const uses = files.filter((f) => f.path !== CATALOGUE_FILE).flatMap(codeLiterals);
  const used = new Set(uses.map((u) => u.code));
  return {
    uncatalogued: uses.filter((u) => !Object.hasOwn(catalogue, u.code)).map((u) => `${u.code} at ${u.where}`),
    unused: Object.keys(catalogue).filter((code) => !used.has(code)),
    incomplete: Object.entries(catalogue)
      .filter(([code, e]) => !CODE.test(code) || e.meaning.trim() === '' || e.action.trim() === '')
      .map(([code]) => code),
  };
}

function sourceFiles(dir: string, out: SourceFile[] = []): SourceFile[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(path, out);
    else if (entry.name.endsWith('.ts')) out.push({ path: relative(ROOT, path), text: readFileSync(path, 'utf8') });
  }
  return out;
}

describe('error codes', () => {
  const files = sourceFiles(SRC);

  it('reads the sources it checks', () => {
    assert.ok(files.length > 50, `only ${files.length} files under src/`);
    assert.ok(files.some((f) => f.path === CATALOGUE_FILE));
  });

  it('every FLUXO_ code in src/ is in the catalogue (src/core/error-codes.ts)', () => {
    const { uncatalogued } = checkCatalogue(files, errorCatalogue);
    assert.deepEqual(uncatalogued, [], 'add these codes to src/core/error-codes.ts, then run `npm run docs`');
  });

  it('every catalogue entry is still used somewhere in src/', () => {
    const { unused } = checkCatalogue(files, errorCatalogue);
    assert.deepEqual(unused, [], 'no code raises these any more: remove them from src/core/error-codes.ts');
  });

  it('every catalogue entry says what it means and what to do', () => {
    assert.deepEqual(checkCatalogue(files, errorCatalogue).incomplete, []);
  });

  it('the checker reports an unknown code, a dead entry and an empty one', () => {
    const synthetic: SourceFile[] = [
      {
        path: 'src/sources/made-up.ts',
        text: [
          "// A comment naming 'FLUXO_IN_A_COMMENT' is not a use.",
          "throw new FluxoError('FLUXO_MADE_UP', 'no such code');",
          'const known = `FLUXO_KNOWN`;',
          "const env = process.env.FLUXO_NOT_A_LITERAL ?? 'uses ${FLUXO_INSIDE_TEXT}';",
          "program.addOption(new Option('--token <t>').env('FLUXO_AN_ENV_VAR'));",
        ].join('\n'),
      },
    ];
    const catalogue: Record<string, ErrorCodeEntry> = {
      FLUXO_KNOWN: { area: 'source', meaning: 'known', action: 'none' },
      FLUXO_IN_A_COMMENT: { area: 'source', meaning: 'only in a comment', action: 'remove it' },
      FLUXO_DEAD: { area: 'sink', meaning: '', action: 'remove it' },
    };
    assert.deepEqual(checkCatalogue(synthetic, catalogue), {
      uncatalogued: ['FLUXO_MADE_UP at src/sources/made-up.ts:2'],
      unused: ['FLUXO_IN_A_COMMENT', 'FLUXO_DEAD'],
      incomplete: ['FLUXO_DEAD'],
    });
  });

  it('docs/errors.md is up to date with the catalogue (run `npm run docs`)', () => {
    const committed = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    assert.ok(committed === renderErrorsDoc(errorCatalogue), 'docs/errors.md is out of date: run `npm run docs`');
  });

  it('docs/errors.md has a section for every code', () => {
    const doc = renderErrorsDoc(errorCatalogue);
    for (const code of Object.keys(errorCatalogue)) assert.ok(doc.includes(`### \`${code}\``), code);
  });
});
