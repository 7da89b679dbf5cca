import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { requireProgram } from './external.ts';

/**
 * A small network made of Linux network namespaces, for tests of Fluxo across hosts: one namespace per node,
 * each with `lo` and one veth (`eth0`, 10.<subnet>.0.<n>/24) plugged into a bridge that lives in a namespace
 * of its own, so a link can be cut or degraded on the bridge side while the node keeps its address (as a
 * switch port going down: no RST, packets just vanish).
 *
 * Names are `fxt<pid>x<lab>-<node>`, unique per test process and lab; everything is removed in `t.after`, and
 * namespaces left by a test process that no longer runs (killed before its hooks) are removed at the next start.
 */

const PREFIX = 'fxt';
let labs = 0;

export interface NetnsNode {
  name: string;
  /** The namespace name, for `ip netns exec`. */
  ns: string;
  ip: string;
  /** The node's veth end in the bridge namespace. */
  port: string;
}

/** What `netem()` put on a link: the kernel's netem, or a fallback when the kernel has no sch_netem. */
export interface LinkImpairment {
  kind: 'netem' | 'tbf';
  description: string;
}

type TestContext = { after: (fn: () => unknown) => void; skip: (message?: string) => void };

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

function tryRun(cmd: string, args: string[]): { ok: boolean; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

export function listNamespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces of an earlier test process that died before its after hooks (kill -9, OOM). */
function removeOrphans(): void {
  for (const ns of listNamespaces()) {
    const m = ns.match(new RegExp(`^${PREFIX}(\\d+)x`));
    if (m && !processAlive(Number(m[1]))) tryRun('ip', ['netns', 'delete', ns]);
  }
}

/**
 * Whether this test can make namespaces: root, `ip`, and a namespace that can be created. When it cannot, in
 * CI (CI=true) the test fails with the reason; elsewhere it is skipped with the reason (returns false).
 */
export function requireNetns(t: TestContext): boolean {
  const refuse = (reason: string): false => {
    const message = `network namespaces unavailable: ${reason}`;
    if (process.env.CI === 'true') throw new Error(`${message}; CI must run this test as root with iproute2`);
    t.skip(message);
    return false;
  };
  if (!requireProgram(t, 'ip', 'iproute2')) return false;
  if (process.getuid?.() !== 0) return refuse(`needs root (uid ${process.getuid?.()})`);
  const probe = `${PREFIX}${process.pid}xprobe`;
  const made = tryRun('ip', ['netns', 'add', probe]);
  tryRun('ip', ['netns', 'delete', probe]);
  if (!made.ok) return refuse(`ip netns add failed: ${made.output}`);
  return true;
}

export class NetnsLab {
  readonly nodes = new Map<string, NetnsNode>();
  readonly bridgeNs: string;
  private readonly base: string;
  private readonly children = new Set<ChildProcess>();
  private readonly namespaces: string[] = [];

  /** Makes the bridge and one namespace per node (IPs in the order given: .1, .2, …); removed in t.after. */
  constructor(t: { after: (fn: () => unknown) => void }, nodeNames: string[]) {
    removeOrphans();
    const lab = ++labs;
    this.base = `${PREFIX}${process.pid}x${lab}`;
    // Subnets only need to differ between labs alive at once (each namespace has its own routes anyway).
    const subnet = 16 + ((process.pid * 7 + lab) % 200);
    this.bridgeNs = `${this.base}-br`;
    t.after(() => this.destroy());
    this.addNamespace(this.bridgeNs);
    ip(['-n', this.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.bridgeNs, 'link', 'set', 'br0', 'up']);
    nodeNames.forEach((name, i) => {
      const node: NetnsNode = { name, ns: `${this.base}-${name}`, ip: `10.${subnet}.0.${i + 1}`, port: `p${i + 1}` };
      this.addNamespace(node.ns);
      ip(['-n', this.bridgeNs, 'link', 'add', node.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.ns]);
      ip(['-n', this.bridgeNs, 'link', 'set', node.port, 'master', 'br0']);
      ip(['-n', this.bridgeNs, 'link', 'set', node.port, 'up']);
      ip(['-n', node.ns, 'addr', 'add', `${node.ip}/24`, 'dev', 'eth0']);
      ip(['-n', node.ns, 'link', 'set', 'eth0', 'up']);
      this.nodes.set(name, node);
    });
  }

  private addNamespace(ns: string): void {
    ip(['netns', 'add', ns]);
    this.namespaces.push(ns);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  node(name: string): NetnsNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name} in this lab`);
    return node;
  }

  /** Spawns `cmd args` inside the node's namespace (`ip netns exec` execs it: the child's pid is cmd's own). */
  exec(node: string, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.node(node).ns, cmd, ...args], options);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Cuts the node off: its port on the bridge goes down (packets to and from it are dropped, nothing is refused). */
  linkDown(node: string): void {
    ip(['-n', this.bridgeNs, 'link', 'set', this.node(node).port, 'down']);
  }

  linkUp(node: string): void {
    ip(['-n', this.bridgeNs, 'link', 'set', this.node(node).port, 'up']);
  }

  /**
   * Delay and loss on the node's link, both directions (`tc qdisc … netem delay 200ms loss 5%` on each end).
   * A kernel without sch_netem (some VM kernels, no modules) gets the closest thing its qdiscs allow: tbf
   * shaping to `fallbackRate` whose queue holds at most `delay` of data, so a busy link queues up to that long
   * and drops beyond it. The returned description says which one was applied.
   */
  netem(node: string, delay: string, loss: string, fallbackRate = '32kbit'): LinkImpairment {
    const ends = this.linkEnds(node);
    tryRun('modprobe', ['sch_netem']);
    const netem = ends.map(([ns, dev]) =>
      tryRun('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'netem', 'delay', delay, 'loss', loss]),
    );
    if (netem.every((r) => r.ok)) return { kind: 'netem', description: `netem delay ${delay} loss ${loss}` };
    const why = netem.find((r) => !r.ok)!.output;
    const tbf = ['tbf', 'rate', fallbackRate, 'burst', '4kb', 'latency', delay];
    for (const [ns, dev] of ends) {
      tryRun('tc', ['-n', ns, 'qdisc', 'del', 'dev', dev, 'root']);
      const r = tryRun('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', ...tbf]);
      if (!r.ok) throw new Error(`netem unavailable (${why}), and tbf too: ${r.output}`);
    }
    // The loss netem would add, with nftables in the node's namespace: each packet in or out dropped at random.
    const percent = Number.parseFloat(loss);
    const ns = this.node(node).ns;
    const rules = [
      ['add', 'table', 'inet', 'fluxo_loss'],
      ...['input', 'output'].flatMap((hook) => [
        ['add', 'chain', 'inet', 'fluxo_loss', hook, `{ type filter hook ${hook} priority 0; }`],
        ['add', 'rule', 'inet', 'fluxo_loss', hook, 'numgen', 'random', 'mod', '100', '<', String(percent), 'drop'],
      ]),
    ];
    const nft = rules.map((rule) => tryRun('ip', ['netns', 'exec', ns, 'nft', ...rule]));
    if (!nft.every((r) => r.ok) && process.env.CI === 'true') {
      throw new Error(
        `netem unavailable and nftables could not add the loss: ${nft.find((r) => !r.ok)!.output}; CI must install nftables`,
      );
    }
    const lossText = nft.every((r) => r.ok)
      ? `, and ${percent}% of packets dropped at random each way (nftables numgen)`
      : `; nftables could not add the loss (${nft.find((r) => !r.ok)!.output.trim()})`;
    return {
      kind: 'tbf',
      description: `netem unavailable (${why}); ${tbf.join(' ')} instead (queueing delay up to ${delay} under load, drops past it)${lossText}`,
    };
  }

  /** Removes what netem() put on the node's link; returns what it did (`tc -s qdisc` of both ends: sent, dropped). */
  clearNetem(node: string): string {
    tryRun('ip', ['netns', 'exec', this.node(node).ns, 'nft', 'delete', 'table', 'inet', 'fluxo_loss']);
    return this.linkEnds(node)
      .map(([ns, dev]) => {
        const shown = tryRun('tc', ['-n', ns, '-s', 'qdisc', 'show', 'dev', dev, 'root']).output;
        tryRun('tc', ['-n', ns, 'qdisc', 'del', 'dev', dev, 'root']);
        return `${dev === 'eth0' ? 'from' : 'to'} ${node}: ${shown.replace(/\s+/g, ' ')}`;
      })
      .join('; ');
  }

  /** [namespace, device] of both ends of the node's link: its bridge port, then its eth0. */
  private linkEnds(node: string): [string, string][] {
    const n = this.node(node);
    return [
      [this.bridgeNs, n.port],
      [n.ns, 'eth0'],
    ];
  }

  /**
   * Kills what exec() started (a namespace outlives its name while a process is in it), then deletes every
   * namespace, which takes their veths and the bridge with them. Never throws, so later after hooks still run.
   */
  async destroy(): Promise<void> {
    await Promise.all(
      [...this.children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
    for (const ns of this.namespaces.splice(0).reverse()) tryRun('ip', ['netns', 'delete', ns]);
  }

  /** Namespaces of this lab still present (empty after destroy()). */
  leftovers(): string[] {
    return listNamespaces().filter((ns) => ns.startsWith(`${this.base}-`));
  }
}
