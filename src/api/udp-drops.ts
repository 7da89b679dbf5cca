import { readFile } from 'node:fs/promises';

/**
 * Datagrams the kernel dropped from a UDP socket's full receive queue, before Fluxo could read them: the last
 * column of /proc/net/udp(6), per local port. Linux only; elsewhere nothing is known and nothing is reported.
 * The count belongs to the socket, so it starts again from 0 when a reload reopens the source.
 */

/** `udp 127.0.0.1:5514` or `udp [::1]:5514` (a source's endpoint) → the address and port; undefined otherwise. */
export function udpEndpoint(endpoint: string | undefined): { address: string; port: number } | undefined {
  const m = endpoint?.match(/^udp \[?([^\]\s]+?)\]?:(\d+)$/);
  return m ? { address: m[1]!, port: Number(m[2]) } : undefined;
}

/** The drops column of /proc/net/udp text, summed per `address:port` (IPv4 dotted; IPv6 as `*` plus the port). */
export function parseProcNetUdp(text: string, ipv6: boolean): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 13) continue;
    const [addrHex, portHex] = f[1]!.split(':') as [string, string | undefined];
    if (portHex === undefined) continue;
    const port = Number.parseInt(portHex, 16);
    const drops = Number(f[12]);
    if (!Number.isFinite(drops)) continue;
    // The kernel prints the IPv4 address as one 32-bit word in host order (little-endian on x86 and arm64).
    const address = ipv6 || addrHex.length !== 8 ? '*' : hexIpv4(addrHex);
    const key = `${address}:${port}`;
    out.set(key, (out.get(key) ?? 0) + drops);
  }
  return out;
}

function hexIpv4(hex: string): string {
  const bytes = [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  return bytes.join('.');
}

/** Kernel drops per source id, for the sources whose endpoint is a UDP address. */
export async function udpKernelDrops(
  sources: readonly { id: string; endpoint?: string | undefined }[],
): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  const wanted = sources.map((s) => ({ id: s.id, at: udpEndpoint(s.endpoint) })).filter((s) => s.at !== undefined);
  if (wanted.length === 0) return result;
  const tables: Map<string, number>[] = [];
  for (const [file, ipv6] of [
    ['/proc/net/udp', false],
    ['/proc/net/udp6', true],
  ] as const) {
    try {
      tables.push(parseProcNetUdp(await readFile(file, 'utf8'), ipv6));
    } catch {
      // Not Linux, or no IPv6: nothing to add.
    }
  }
  for (const { id, at } of wanted) {
    const { address, port } = at!;
    let drops = 0;
    for (const table of tables) {
      // An IPv6 source matches its port in udp6; an IPv4 one its address (or the wildcard) in udp.
      drops += address.includes(':')
        ? (table.get(`*:${port}`) ?? 0)
        : (table.get(`${address}:${port}`) ?? 0) + (address === '0.0.0.0' ? 0 : (table.get(`0.0.0.0:${port}`) ?? 0));
    }
    result.set(id, drops);
  }
  return result;
}
