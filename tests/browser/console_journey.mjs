// The console journey (tests/tests/console.rs): sign in, a credential template made on its
// page, a customer onboarded with the form who turns Onboarded once the test's wallet
// connected, a batch with a bad row watched row by row, a verification whose result appears
// on screen, and the template deleted on its page (after confirming) so that a second
// verification fails with the reason on screen. `input`: { email, password, templateName, csv }.
import { run } from './harness.mjs';

const expectText = async (locator, text, what) => {
  const seen = (await locator.innerText()).trim();
  if (!seen.includes(text)) throw new Error(`${what}: expected ${JSON.stringify(text)}, saw ${JSON.stringify(seen)}`);
};

run(async ({ page, input, shot, ask }) => {
  const steps = [];

  // Sign in: the console sends a stranger to its sign-in page, and back after.
  await page.goto('/console');
  if (!page.url().includes('/console/sign-in')) throw new Error(`not sent to sign in: ${page.url()}`);
  await shot('console-sign-in');
  await page.getByLabel('Email').fill(input.email);
  await page.getByLabel('Password').fill(input.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/console');
  await expectText(page.locator('h1'), 'Dashboard', 'the page after signing in');
  await shot('console-dashboard');
  steps.push('signed in');

  // A credential template, made on its page with two custom fields.
  await page.getByRole('link', { name: 'Templates', exact: true }).click();
  await page.waitForURL('**/console/templates');
  await page.goto('/console/templates/new');
  await page.getByLabel('Template name').fill(input.templateName);
  await page.getByLabel('Issuer', { exact: true }).fill('Acme Gym');
  await page.getByLabel('Credential type').fill(input.templateName);
  await page.getByLabel('Logo URL').fill('https://example.com/logo.png');
  await page.getByLabel('Field name 1', { exact: true }).fill('skill');
  await page.getByLabel('Description 1', { exact: true }).fill('Skill');
  await page.getByLabel('Field name 2', { exact: true }).fill('level');
  await page.getByLabel('Description 2', { exact: true }).fill('Level');
  await shot('console-template-new');
  await page.getByRole('button', { name: 'Create template' }).click();
  await page.waitForURL(/\/console\/templates\/[^/?]+(\?.*)?$/);
  const templatePage = page.url().split('?')[0];
  await expectText(page.locator('h1'), input.templateName, 'the template made');
  await shot('console-template-show');
  const { template } = await ask('template made');
  steps.push('template');

  // A customer onboarded with the form, by email, the template auto-issued with its values.
  await page.getByRole('link', { name: 'Customers', exact: true }).click();
  await page.getByRole('link', { name: 'Onboard a customer' }).click();
  await page.waitForURL('**/console/customers/new');
  await page.getByLabel('Customer name').fill('Jane Doe');
  await page.getByLabel('Email address').fill('jane@example.com');
  await page.getByLabel('Template', { exact: true }).selectOption(template);
  await page.getByLabel(/^Skill/).fill('climbing');
  await page.getByLabel(/^Level/).fill('gold');
  await shot('console-onboard-filled');
  await page.getByRole('button', { name: 'Onboard', exact: true }).click();
  await page.waitForURL(/\/console\/customers\/[^/?]+\?notice=onboarded$/);
  const customerPage = page.url().split('?')[0];
  const invited = (await page.locator('h1 .badge').innerText()).trim();
  await shot('console-customer-invited');
  // The test's wallet takes the emailed QR code, connects and syncs.
  await ask('onboarded');
  await page.goto(customerPage);
  await expectText(page.locator('h1 .badge'), 'Onboarded', 'the customer once the wallet connected');
  const credentialRow = (await page.locator('main table tbody tr').first().innerText()).trim();
  await shot('console-customer-onboarded');
  await page.getByRole('link', { name: 'Customers', exact: true }).click();
  await page.getByRole('link', { name: 'Onboarded', exact: true }).click();
  const onboardedRows = await page.locator('tbody tr td[data-label="Name"]').allInnerTexts();
  await shot('console-customers-onboarded');
  steps.push('onboarded');

  // Batch issuance: the first row's invitation email waits (the test holds the mail server),
  // so the page shows the batch running; then every row is reported without a reload.
  await page.getByRole('link', { name: 'Batch issuance', exact: true }).click();
  await page.waitForURL('**/console/batches');
  await shot('console-batches');
  await ask('hold mail');
  await page.getByLabel('Template', { exact: true }).selectOption(template);
  await page.getByLabel('CSV file', { exact: true }).setInputFiles({
    name: 'members.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from(input.csv, 'utf8'),
  });
  await page.getByRole('button', { name: 'Upload and issue' }).click();
  await page.waitForURL(/\/console\/batches\/[0-9a-f]{24}$/);
  const batchUrl = page.url();
  await expectText(page.locator('#batch-state'), 'Running', 'the batch while its first row waits');
  const running = {
    processed: await page.locator('#batch-processed').innerText(),
    total: await page.locator('#batch-total').innerText(),
    max: await page.locator('#batch-progress').getAttribute('max'),
  };
  await shot('console-batch-running');
  await page.evaluate(() => { window.lanyardSamePage = true; });
  await ask('release mail');
  await page.waitForFunction(() => document.getElementById('batch-state').textContent === 'Done', null, { timeout: 60000 });
  const live = await page.evaluate(() => window.lanyardSamePage === true);
  const progress = await page.locator('#batch-progress').evaluate((bar) => ({ value: bar.value, max: bar.max }));
  const rows = await page.locator('#batch-rows tbody tr').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())));
  await shot('console-batch-done');
  // The same page on a phone's screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('console-batch-done-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download the failed rows (CSV)' }).click(),
  ]);
  const failuresPath = await download.path();
  const { readFile } = await import('node:fs/promises');
  const failures = await readFile(failuresPath, 'utf8');
  // The report as it reads after a reload (from the store), beside the live one.
  await page.goto(batchUrl);
  const reloaded = await page.locator('#batch-rows tbody tr').count();
  steps.push('batch');

  // A verification: the template and its fields, the QR code on screen, the result live.
  await page.getByRole('link', { name: 'Verifications', exact: true }).click();
  await page.waitForURL('**/console/verifications');
  await page.getByLabel('Template', { exact: true }).selectOption(template);
  await page.getByRole('button', { name: 'Next: the fields to ask for' }).click();
  await page.waitForURL('**/console/verifications/new?*');
  await expectText(page.locator('h1'), input.templateName, 'the new verification page');
  await page.getByRole('checkbox', { name: /Skill/ }).check();
  await page.getByLabel('Purpose').fill('Entry to the gym');
  await shot('console-verification-new');
  await page.getByRole('button', { name: 'Create the request' }).click();
  await page.waitForURL(/\/console\/verifications\/[0-9a-f]{24}$/);
  await expectText(page.locator('#verification-state'), 'Pending', 'a new verification');
  const url = await page.locator('#verification-link').getAttribute('href');
  const qr = await shot('console-verification-pending');
  await page.locator('.qr').screenshot({ path: qr.replace('.png', '-qr.png') });
  await page.evaluate(() => { window.lanyardSamePage = true; });
  await ask('present', { url, qr: qr.replace('.png', '-qr.png') });
  await page.waitForFunction(() => document.getElementById('verification-state').textContent !== 'Pending', null, { timeout: 60000 });
  const verification = {
    live: await page.evaluate(() => window.lanyardSamePage === true),
    state: await page.locator('#verification-state').innerText(),
    values: await page.locator('#verification-values').evaluate((dl) => {
      const out = {};
      const dts = dl.querySelectorAll('dt');
      dts.forEach((dt) => { out[dt.textContent] = dt.nextElementSibling.textContent; });
      return out;
    }),
    requestHidden: await page.locator('#verification-request').isHidden(),
  };
  await shot('console-verification-done');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('console-verification-done-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  steps.push('verification');

  // A second request, answered after the template was deleted: failed, the reason on screen.
  await page.getByRole('link', { name: 'Verifications', exact: true }).click();
  await page.getByLabel('Template', { exact: true }).selectOption(template);
  await page.getByRole('button', { name: 'Next: the fields to ask for' }).click();
  await page.getByRole('button', { name: 'Create the request' }).click();
  await page.waitForURL(/\/console\/verifications\/[0-9a-f]{24}$/);
  const second = await page.locator('#verification-link').getAttribute('href');
  const secondPage = page.url();
  await ask('present revoked', { url: second });
  // The wallet holds the request; the template is deleted on its page, after confirming.
  await page.goto(templatePage);
  await page.getByRole('link', { name: 'Delete template…' }).click();
  await expectText(page.locator('main'), 'lose', 'the delete page spells out the consequence');
  await shot('console-template-delete');
  await page.getByLabel('I understand that the holders lose these credentials').check();
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete the template and its credentials' }).click();
  await page.waitForURL('**/console/templates?deleted=1');
  await shot('console-template-deleted');
  steps.push('template deleted');
  await ask('deleted');
  await page.goto(secondPage);
  await page.waitForFunction(() => document.getElementById('verification-state').textContent !== 'Pending', null, { timeout: 60000 });
  const failed = {
    state: await page.locator('#verification-state').innerText(),
    reasons: await page.locator('#verification-reasons li').allInnerTexts(),
    valuesShown: await page.locator('#verification-disclosed').isVisible(),
  };
  await shot('console-verification-failed');
  await page.getByRole('link', { name: 'Verifications', exact: true }).click();
  await shot('console-verifications');
  steps.push('failed verification');

  return { steps, invited, onboardedRows, credentialRow, running, live, progress, rows, reloaded, failures, verification, failed };
});
