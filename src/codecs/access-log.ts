/**
 * Realistic web-server access-log lines in the *combined* format, for the generator source, benchmarks and
 * `fluxo simulate`:
 *
 *   203.0.113.9 - - [05/Mar/2025:14:02:17 +0000] "GET /products/oak-desk?seq=42 HTTP/1.1" 200 18734 "https://www.google.com/" "Mozilla/5.0 (…)"
 *
 * `apache_combined` is Apache's `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
 * `nginx_combined` is nginx's stock `combined` log_format, which has the same layout; the lines differ the way
 * the two servers really differ: nginx writes an empty body as `0` where Apache writes `-`, escapes a `"` inside
 * a header as `\x22` where Apache writes `\"`, and logs the occasional 499 (client closed the request).
 *
 * Deterministic for a seed (mulberry32), timestamps in UTC. Clients, request targets, referrers and user
 * agents are drawn from tables built once in the constructor, so a line costs a few random numbers and one
 * string concatenation.
 */

export const ACCESS_LOG_FORMATS = ['apache_combined', 'nginx_combined'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

export interface AccessLogGeneratorOptions {
  format?: AccessLogFormat;
  /** 32-bit seed; the same seed and the same calls give the same lines. Random when absent. */
  seed?: number;
}

/**
 * Matches a combined-format line: client, ident, user, time, request, status, bytes, referrer, user agent.
 * Quoted fields may contain escaped quotes (`\"`).
 */
export const COMBINED_LOG_LINE =
  /^(\S+) (\S+) (\S+) \[(\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$/;

const SEQUENCE = /[?&]seq=(\d+) /;

/** The sequence number a generated line carries in its query string (`?seq=123`), if any. */
export function sequenceOf(line: string): number | undefined {
  const m = SEQUENCE.exec(line);
  return m ? Number(m[1]) : undefined;
}

type RequestClass = 'page' | 'asset' | 'api' | 'scan';

/** [method, path template, class]; `{id}`, `{n}`, `{hash}`, `{slug}`, `{cat}`, `{term}` are filled per target. */
const REQUESTS: readonly [string, string, RequestClass, number][] = [
  ['GET', '/', 'page', 6],
  ['GET', '/products/{slug}', 'page', 10],
  ['GET', '/category/{cat}?page={n}', 'page', 5],
  ['GET', '/blog/2024/{n}/{slug}', 'page', 3],
  ['GET', '/search?q={term}&sort=relevance', 'page', 4],
  ['GET', '/cart', 'page', 2],
  ['POST', '/checkout', 'page', 1],
  ['GET', '/account/orders', 'page', 1],
  ['POST', '/login', 'page', 1],
  ['GET', '/static/css/main.{hash}.css', 'asset', 7],
  ['GET', '/static/js/app.{hash}.js', 'asset', 7],
  ['GET', '/static/js/vendor.{hash}.js', 'asset', 5],
  ['GET', '/images/products/{id}.jpg', 'asset', 10],
  ['GET', '/fonts/inter-var.woff2', 'asset', 2],
  ['GET', '/favicon.ico', 'asset', 2],
  ['GET', '/robots.txt', 'asset', 1],
  ['GET', '/api/v1/products/{id}', 'api', 8],
  ['GET', '/api/v1/products?category={cat}&limit=24&offset={n}', 'api', 6],
  ['POST', '/api/v1/cart/items', 'api', 4],
  ['DELETE', '/api/v1/cart/items/{id}', 'api', 1],
  ['GET', '/api/v1/users/{id}/orders?status=open', 'api', 3],
  ['PUT', '/api/v1/users/{id}/preferences', 'api', 1],
  ['POST', '/api/v1/events', 'api', 4],
  ['OPTIONS', '/api/v1/cart/items', 'api', 1],
  ['HEAD', '/health', 'api', 1],
  ['GET', '/wp-login.php', 'scan', 1],
  ['GET', '/.env', 'scan', 1],
  ['POST', '/xmlrpc.php', 'scan', 1],
  ['GET', '/.git/config', 'scan', 1],
];

/** [status, weight] per request class. */
const STATUSES: Record<RequestClass, readonly [number, number][]> = {
  page: [
    [200, 82],
    [304, 5],
    [301, 3],
    [302, 3],
    [404, 5],
    [500, 1],
    [503, 1],
  ],
  asset: [
    [200, 70],
    [304, 24],
    [404, 4],
    [206, 2],
  ],
  api: [
    [200, 80],
    [201, 5],
    [204, 3],
    [400, 3],
    [401, 3],
    [404, 3],
    [429, 1],
    [500, 1],
    [502, 1],
  ],
  scan: [
    [404, 85],
    [403, 10],
    [301, 5],
  ],
};

/** Body sizes [min, max] for a 200 (log-uniform between them). */
const BODY_SIZES: Record<RequestClass, readonly [number, number]> = {
  page: [6_000, 60_000],
  asset: [800, 180_000],
  api: [60, 9_000],
  scan: [150, 600],
};

const REFERRERS: readonly [string, number][] = [
  ['-', 35],
  ['https://shop.example.com/', 15],
  ['https://shop.example.com/products/oak-desk', 8],
  ['https://shop.example.com/category/furniture?page=2', 6],
  ['https://shop.example.com/search?q=standing+desk&sort=relevance', 4],
  ['https://www.google.com/', 18],
  ['https://www.bing.com/', 3],
  ['https://duckduckgo.com/', 3],
  ['https://t.co/x8Kq2Lm9Zt', 2],
  ['https://www.facebook.com/', 3],
  ['android-app://com.google.android.gm/', 1],
];

const QUOTED_UA =
  'Mozilla/5.0 (Linux; Android 13; "Galaxy Tab S8" Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Safari/537.36';

const USER_AGENTS: readonly [string, number][] = [
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    28,
  ],
  [
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36',
    12,
  ],
  [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1',
    16,
  ],
  [
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
    10,
  ],
  ['Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0', 5],
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67',
    7,
  ],
  [QUOTED_UA, 3],
  ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 5],
  ['Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', 2],
  ['curl/8.5.0', 2],
  ['python-requests/2.31.0', 2],
  ['okhttp/4.12.0', 3],
];

const USERS: readonly [string, number][] = [
  ['-', 97],
  ['alice', 2],
  ['ops-monitor', 1],
];
const PROTOCOLS: readonly [string, number][] = [
  ['HTTP/1.1', 70],
  ['HTTP/2.0', 28],
  ['HTTP/1.0', 2],
];
const SLUGS = ['oak-desk', 'walnut-shelf', 'ergonomic-chair', 'standing-desk-pro', 'linen-curtains', 'brass-lamp'];
const CATEGORIES = ['furniture', 'lighting', 'textiles', 'office', 'outdoor', 'kitchen'];
const TERMS = ['desk', 'lamp+brass', 'chair', 'shelf+oak', 'curtains', 'gift+card'];
const IPV6_PREFIXES = ['2a02:c7c:5e3a', '2600:1700:b1d0', '2a01:e0a:1c3', '2409:8a28:4c2', '2001:db8:85a3'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const CLIENTS = 2048;
const TARGETS = 1024;
/** Weighted picks go through tables of this many slots: one random number, one array read. */
const SLOTS = 256;

export class AccessLogGenerator {
  readonly format: AccessLogFormat;
  private state: number;
  private readonly clients: string[] = [];
  /** `"METHOD /path` of each target; the protocol and quote are appended per line, after the sequence. */
  private readonly targets: string[] = [];
  private readonly targetSeparators: string[] = [];
  private readonly targetClasses: RequestClass[] = [];
  private readonly targetIsHead: boolean[] = [];
  private readonly statuses: Record<RequestClass, number[]>;
  private readonly referrers: string[];
  private readonly userAgents: string[];
  private readonly users: string[];
  private readonly protocols: string[];
  private readonly emptyBody: string;
  private cachedSecond = -1;
  private cachedTime = '';

  constructor(options: AccessLogGeneratorOptions = {}) {
    this.format = options.format ?? 'apache_combined';
    this.state = (options.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
    const nginx = this.format === 'nginx_combined';
    this.emptyBody = nginx ? '0' : '-';
    const escapedQuote = nginx ? '\\x22' : '\\"';
    this.referrers = weightedTable(REFERRERS);
    this.userAgents = weightedTable(USER_AGENTS).map((ua) => ua.replaceAll('"', escapedQuote));
    this.users = weightedTable(USERS);
    this.protocols = weightedTable(PROTOCOLS);
    const statuses = {} as Record<RequestClass, number[]>;
    for (const cls of Object.keys(STATUSES) as RequestClass[]) {
      const weights = nginx && cls !== 'scan' ? [...STATUSES[cls], [499, 1] as [number, number]] : STATUSES[cls];
      statuses[cls] = weightedTable(weights);
    }
    this.statuses = statuses;
    for (let i = 0; i < CLIENTS; i++) this.clients.push(this.makeClient());
    const templates = weightedTable(REQUESTS.map((r) => [r, r[3]] as const));
    for (let i = 0; i < TARGETS; i++) {
      const [method, template, cls] = templates[this.int(SLOTS)]!;
      const path = this.fill(template);
      this.targets.push(`"${method} ${path}`);
      this.targetSeparators.push(path.includes('?') ? '&seq=' : '?seq=');
      this.targetClasses.push(cls);
      this.targetIsHead.push(method === 'HEAD');
    }
  }

  /**
   * One line, without a trailing newline. `sequence`, when given, is appended to the query string as
   * `seq=<n>`; `nowMs` is the time written in the line.
   */
  line(sequence?: number, nowMs: number = Date.now()): string {
    // Popular clients and pages come up far more often than the tail, as in real traffic.
    const r1 = this.next();
    const client = this.clients[Math.floor(r1 * r1 * r1 * CLIENTS)]!;
    const r2 = this.next();
    const t = Math.floor(r2 * r2 * TARGETS);
    const cls = this.targetClasses[t]!;
    const status = this.statuses[cls][this.int(SLOTS)]!;
    let bytes: string;
    if (status === 304 || status === 204 || this.targetIsHead[t]) {
      bytes = this.emptyBody;
    } else if (status >= 300 && status < 400) {
      bytes = String(160 + this.int(80));
    } else if (status >= 400) {
      bytes = String(cls === 'page' ? 3_000 + this.int(2_000) : 100 + this.int(500));
    } else {
      const [min, max] = BODY_SIZES[cls];
      bytes = String(Math.floor(min * (max / min) ** this.next()));
    }
    const request = sequence === undefined ? this.targets[t]! : this.targets[t]! + this.targetSeparators[t]! + sequence;
    return `${client} - ${this.users[this.int(SLOTS)]} [${this.time(nowMs)}] ${request} ${this.protocols[this.int(SLOTS)]}" ${status} ${bytes} "${this.referrers[this.int(SLOTS)]}" "${this.userAgents[this.int(SLOTS)]}"`;
  }

  /** mulberry32: a 32-bit state, good enough statistics for synthetic traffic, and fast. */
  private next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  private int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** `10/Oct/2024:13:55:36 +0000`, formatted once per second. */
  private time(nowMs: number): string {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.cachedSecond) {
      const d = new Date(second * 1000);
      this.cachedSecond = second;
      this.cachedTime = `${pad2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000`;
    }
    return this.cachedTime;
  }

  private makeClient(): string {
    if (this.next() < 0.12) {
      const groups: string[] = [IPV6_PREFIXES[this.int(IPV6_PREFIXES.length)]!];
      for (let i = 0; i < 5; i++) groups.push(this.int(0x10000).toString(16));
      return groups.join(':');
    }
    if (this.next() < 0.05) return `10.${this.int(256)}.${this.int(256)}.${1 + this.int(254)}`;
    let first = 1 + this.int(223);
    if (first === 10 || first === 127) first++;
    return `${first}.${this.int(256)}.${this.int(256)}.${1 + this.int(254)}`;
  }

  private fill(template: string): string {
    return template
      .replace('{id}', String(1000 + this.int(90_000)))
      .replace('{n}', String(1 + this.int(12)))
      .replace('{hash}', this.int(0x1000000).toString(16).padStart(6, '0'))
      .replace('{slug}', SLUGS[this.int(SLUGS.length)]!)
      .replace('{cat}', CATEGORIES[this.int(CATEGORIES.length)]!)
      .replace('{term}', TERMS[this.int(TERMS.length)]!);
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Spreads weighted values over SLOTS slots so a pick is `table[int(SLOTS)]`. */
function weightedTable<T>(weights: readonly (readonly [T, number])[]): T[] {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  const table: T[] = [];
  let acc = 0;
  for (const [value, w] of weights) {
    acc += w;
    const until = Math.round((acc / total) * SLOTS);
    while (table.length < until) table.push(value);
  }
  return table;
}
