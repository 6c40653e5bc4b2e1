// What every console script shares (tests/support/src/browser.rs runs them): Debian's Chromium
// driven by playwright-core (installed by scripts/test into <target>/tools/playwright, found
// through LANYARD_PLAYWRIGHT), a page on the agent at LANYARD_URL, screenshots kept under
// LANYARD_ARTIFACTS, and the conversation with the Rust test over stdin/stdout: `ask(name,
// data)` prints one line `@@lanyard {"ask": ...}` and waits for the test's one-line JSON
// answer; what the script returns is printed as `@@lanyard {"result": ...}`.
//
// The browser reaches nothing but the agent: every request to another origin is aborted and
// fails the script, as does an uncaught exception or a console error on a page.
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join, basename } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this script through tests/support/src/browser.rs`);
  return value;
};

const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function say(message) {
  process.stdout.write(`@@lanyard ${JSON.stringify(message)}\n`);
}

/** Asks the Rust test to do `name` (with `data`) and returns its answer. */
export async function ask(name, data = null) {
  say({ ask: name, data });
  const { value, done } = await answers.next();
  if (done) throw new Error(`the test closed stdin instead of answering ${name}`);
  return JSON.parse(value);
}

/**
 * Runs `body({ page, context, browser, url, input, shot, ask, problems })` in a fresh browser
 * and exits: 0 with its return value printed as the result, 1 with the error (and a screenshot
 * of the page as it failed).
 */
export async function run(body) {
  const script = basename(process.argv[1], '.mjs');
  const url = env('LANYARD_URL');
  const input = JSON.parse(process.env.LANYARD_INPUT || 'null');
  const artifacts = env('LANYARD_ARTIFACTS');
  mkdirSync(artifacts, { recursive: true });
  const { chromium } = await import(pathToFileURL(env('LANYARD_PLAYWRIGHT')).href);
  const origin = new URL(url).origin;
  const problems = [];
  const browser = await chromium.launch({
    executablePath: process.env.LANYARD_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking'],
  });
  let page;
  let exitCode = 0;
  try {
    const context = await browser.newContext({ baseURL: url, viewport: { width: 1280, height: 900 } });
    await context.route('**/*', (route) => {
      const requested = route.request().url();
      const target = new URL(requested);
      if (target.origin === origin || target.protocol === 'data:' || target.protocol === 'blob:') {
        return route.continue();
      }
      problems.push(`the page fetched ${requested}, outside the agent (${origin})`);
      return route.abort('blockedbyclient');
    });
    context.on('page', (p) => watch(p, problems));
    page = await context.newPage();
    const shot = async (name, target = page) => {
      const path = join(artifacts, `${name}.png`);
      await target.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
      return path;
    };
    const result = await body({ page, context, browser, url, input, shot, ask, problems });
    if (problems.length > 0) {
      throw new Error(`the pages misbehaved:\n  ${problems.join('\n  ')}`);
    }
    say({ result: result === undefined ? null : result });
  } catch (error) {
    exitCode = 1;
    console.error(`${script} failed: ${error && error.stack ? error.stack : error}`);
    if (problems.length > 0) console.error(`problems seen:\n  ${problems.join('\n  ')}`);
    if (page) {
      const path = join(artifacts, `${script}-failure.png`);
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failure: ${path}`);
    }
  } finally {
    await browser.close().catch(() => {});
  }
  process.exit(exitCode);
}

function watch(page, problems) {
  page.on('pageerror', (error) => problems.push(`uncaught exception on ${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error on ${page.url()}: ${message.text()}`);
  });
}
