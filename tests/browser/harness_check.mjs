// The harness's own check (tests/tests/console.rs): asks the test for an invitation, opens its
// page, keeps a screenshot and returns what it read; with `input.external`, a page that loads
// an image from outside the agent, which must fail the script.
import { run } from './harness.mjs';

run(async ({ page, input, shot, ask }) => {
  if (input.external) {
    await page.goto('/health');
    await page.setContent(`<img alt="elsewhere" src="${input.external}">`);
    await page.waitForLoadState('load');
    return { loaded: true };
  }
  const { url } = await ask('invitation', { label: input.label });
  await page.goto(url);
  const button = await page.getByRole('link', { name: 'Open in Lanyard' }).count();
  const path = await shot('harness-invite-page');
  return { title: await page.title(), heading: await page.locator('h1').first().innerText(), button, path };
});
