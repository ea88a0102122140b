import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { cachedTool, runTool } from './tool-cache.ts';

/**
 * The browser the browser tests drive through playwright-core, which cannot download one here.
 *
 * - `CHROMIUM_PATH`, or Debian's /usr/bin/chromium when it is installed;
 * - otherwise the headless Chromium that @sparticuz/chromium (a devDependency) ships inside its
 *   npm package, so `npm test` needs no browser from the system.
 *
 * `TRANSCRIBO_CHROMIUM=registry` takes the npm one even where a system one exists (to prove that
 * path on a machine that has both); `TRANSCRIBO_CHROMIUM=system` refuses to fall back to it.
 */
export interface ChromiumChoice {
  source: 'CHROMIUM_PATH' | 'system' | 'registry';
  executablePath: string;
  /** What the browser process needs in its environment. */
  env: NodeJS.ProcessEnv;
}

const SYSTEM_CHROMIUM = '/usr/bin/chromium';

export async function chooseChromium(): Promise<ChromiumChoice> {
  const wanted = process.env.TRANSCRIBO_CHROMIUM ?? '';
  if (!['', 'registry', 'system'].includes(wanted)) throw new Error(`TRANSCRIBO_CHROMIUM=${wanted}: expected "registry" or "system"`);
  if (wanted !== 'registry') {
    if (process.env.CHROMIUM_PATH) return { source: 'CHROMIUM_PATH', executablePath: process.env.CHROMIUM_PATH, env: process.env };
    if (existsSync(SYSTEM_CHROMIUM)) return { source: 'system', executablePath: SYSTEM_CHROMIUM, env: process.env };
    if (wanted === 'system') throw new Error(`TRANSCRIBO_CHROMIUM=system, but neither CHROMIUM_PATH nor ${SYSTEM_CHROMIUM} is there`);
  }
  return registryChromium();
}

/**
 * @sparticuz/chromium ships Brotli archives that its executablePath() unpacks into os.tmpdir():
 * /tmp/chromium would be shared by every checkout and, half-written, returned as it is to a
 * second caller (it only checks that the file exists). So they are unpacked into a cache of
 * their own, in a child process whose TMPDIR is the staging directory (changing TMPDIR in a
 * test worker would move every other temp file of that worker).
 *
 * Its binary is built for Amazon Linux 2023 and links NSS, NSPR and expat, which a bare Debian
 * lacks; the package carries them (al2023.tar.br, unpacked only on Lambda by the package itself),
 * so they are unpacked too and put first on LD_LIBRARY_PATH: the browser then needs only glibc
 * and libgcc from the system. Its fonts.conf names /tmp/fonts, so it is rewritten for the cache.
 */
async function registryChromium(): Promise<ChromiumChoice> {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@sparticuz/chromium');
  const packageDir = join(dirname(entry), '..');
  const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
  const name = `sparticuz-chromium-${version}`;
  const dir = await cachedTool(name, async (staging) => {
    const started = performance.now();
    const unpack = `
      const { default: Chromium, inflate } = await import(${JSON.stringify(pathToFileURL(entry).href)});
      const path = await Chromium.executablePath();
      await inflate(${JSON.stringify(join(packageDir, 'bin', 'al2023.tar.br'))});
      process.stdout.write(path);`;
    const path = await runTool(process.execPath, ['--input-type=module', '-e', unpack], { ...process.env, TMPDIR: staging }, `unpacking @sparticuz/chromium ${version}`);
    if (path !== join(staging, 'chromium')) throw new Error(`@sparticuz/chromium unpacked its browser to ${path}, not into ${staging}`);
    writeFileSync(join(staging, 'fonts', 'fonts.conf'), fontsConf(join(dirname(staging), name)));
    process.stderr.write(`[chromium] unpacked @sparticuz/chromium ${version} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  });
  const libs = join(dir, 'al2023', 'lib');
  const ldPath = process.env.LD_LIBRARY_PATH ? `${libs}:${process.env.LD_LIBRARY_PATH}` : libs;
  return { source: 'registry', executablePath: join(dir, 'chromium'), env: { ...process.env, LD_LIBRARY_PATH: ldPath, FONTCONFIG_PATH: join(dir, 'fonts') } };
}

function fontsConf(dir: string): string {
  return `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${dir}/fonts/fonts</dir>\n  <cachedir>${dir}/fonts/cache</cachedir>\n</fontconfig>\n`;
}

/** One line for logs: which browser, from where, which version. */
export async function describeChromium(): Promise<string> {
  const choice = await chooseChromium();
  const version = execFileSync(choice.executablePath, ['--version'], { env: choice.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  return `${choice.source}: ${choice.executablePath} (${version})`;
}

/**
 * Only playwright's own flags plus these: the package's `chromium.args` are for Lambda
 * (--single-process, --no-zygote) and some would blind the tests (--disable-web-security would
 * let a page pass a CORS check the product must answer). These keep the browser from reaching
 * for the network at start-up, which this machine refuses.
 */
export async function launchChromium(): Promise<Browser> {
  const { executablePath, env } = await chooseChromium();
  return chromium.launch({
    executablePath,
    env,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript' };

/** Serves a folder on 127.0.0.1, the way a web app's own origin would serve its page. */
export async function serveFolder(folder: string): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(folder, path);
    if (!file.startsWith(folder)) return void res.writeHead(403).end();
    const stream = createReadStream(file);
    stream.on('error', () => res.writeHead(404).end());
    stream.on('open', () => res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }));
    stream.pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
