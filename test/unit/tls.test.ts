import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadTlsClientOptions, loadTlsServerOptions } from '../../src/codecs/tls.ts';
import { FluxoError } from '../../src/core/errors.ts';
import { tempDir } from '../helpers/context.ts';
import { requireProgram } from '../helpers/external.ts';
import { makeTestCertificates } from '../integration/fixtures/syslog-tls-certs.ts';

function fluxoError(code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof FluxoError, `expected a FluxoError, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

describe('TLS files', () => {
  it('a missing file fails with FLUXO_TLS_FILE naming the component and the file', (t) => {
    const missing = join(tempDir(t), 'server.crt');
    assert.throws(
      () => loadTlsServerOptions({ enabled: true, crt_file: missing, key_file: missing }, 'source s'),
      fluxoError('FLUXO_TLS_FILE', /^source s: cannot read TLS certificate .*server\.crt: ENOENT/),
    );
  });

  it('a file that is not PEM fails with FLUXO_TLS_INVALID naming the files, not a bare OpenSSL message', (t) => {
    const garbage = join(tempDir(t), 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    assert.throws(
      () => loadTlsServerOptions({ enabled: true, crt_file: garbage, key_file: garbage }, 'source s'),
      fluxoError('FLUXO_TLS_INVALID', /^source s: cannot use the TLS files \(crt_file .*garbage\.pem, key_file /),
    );
    assert.throws(
      () => loadTlsClientOptions({ enabled: true, crt_file: garbage, key_file: garbage }, 'sink out'),
      fluxoError('FLUXO_TLS_INVALID', /^sink out: cannot use the TLS files \(crt_file .*garbage\.pem, key_file /),
    );
  });

  it('a key of another certificate fails with FLUXO_TLS_INVALID; a matching pair loads', (t) => {
    const openssl = requireProgram(t, 'openssl', 'openssl');
    if (!openssl) return;
    const certs = makeTestCertificates(openssl, tempDir(t));
    assert.throws(
      () => loadTlsServerOptions({ enabled: true, crt_file: certs.serverCrt, key_file: certs.clientKey }, 'source s'),
      fluxoError('FLUXO_TLS_INVALID', /^source s: cannot use the TLS files/),
    );
    const options = loadTlsServerOptions(
      { enabled: true, crt_file: certs.serverCrt, key_file: certs.serverKey, ca_file: certs.caFile },
      'source s',
    );
    assert.ok(options?.cert && options.key && options.ca);
  });
});
