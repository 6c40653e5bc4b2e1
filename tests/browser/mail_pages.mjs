// The credential templates and email templates pages in Chromium (agent/tests/console_mail_browser.rs):
// sign in, create a credential template with the keyboard-reachable form (a bad field first:
// its error beside it), view it, open its deletion (the consequence spelled out) and confirm;
// write an email template with a logo, preview it, save it, and see the default email's
// preview; on a laptop and on a phone. Screenshots of each page.
import { run } from './harness.mjs';

run(async ({ page, context, input, shot }) => {
  await page.goto('/console/sign-in');
  await page.getByLabel('Email').fill(input.email);
  await page.getByLabel('Password').fill(input.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/console');

  // Credential templates: a refused form first.
  await page.getByRole('link', { name: 'Templates', exact: true }).click();
  await page.waitForURL('**/console/templates');
  await shot('mail-templates-empty');
  await page.getByRole('link', { name: 'New template' }).click();
  await page.getByLabel('Template name').fill(input.template.name);
  await page.getByLabel('Credential type').fill('Membership');
  await page.getByLabel('Logo URL').fill('https://acme.test/logo.png');
  await page.getByLabel('Field name 1').fill('level');
  await page.getByLabel('Description 1').fill(input.template.description);
  await page.getByLabel('Field name 2').fill('member since');
  await page.getByLabel('Description 2').fill('Member since');
  await page.getByRole('button', { name: 'Add a field' }).click();
  await page.getByLabel('Field name 6').fill('locker');
  await page.getByLabel('Description 6').fill('Locker number');
  await page.getByLabel('Limit').fill('250');
  await page.getByRole('button', { name: 'Create template' }).click();
  const fieldError = await page.locator('#field_name_1-error').innerText();
  const invalid = await page.getByLabel('Field name 2').getAttribute('aria-invalid');
  await shot('mail-templates-form-error');
  await page.getByLabel('Field name 2').fill('memberSince');
  await page.getByRole('button', { name: 'Create template' }).click();
  await page.waitForURL(/\/console\/templates\/[0-9a-f]{24}\?created=1$/);
  const created = await page.locator('.notice').innerText();
  const heading = await page.locator('h1').innerText();
  const fields = await page.locator('table code').allInnerTexts();
  await shot('mail-templates-show');
  await page.getByRole('link', { name: 'Delete template…' }).click();
  const consequence = await page.locator('main ul').innerText();
  await shot('mail-templates-delete-confirm');
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete the template and its credentials' }).click();
  const unconfirmed = await page.locator('#confirm-error').innerText();
  await page.getByLabel('I understand that the holders lose these credentials').check();
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete the template and its credentials' }).click();
  await page.waitForURL('**/console/templates?deleted=1');
  const deleted = await page.locator('.notice').innerText();
  await shot('mail-templates-deleted');

  // Email templates: write one with a logo, preview, save.
  await page.getByRole('link', { name: 'Email templates' }).click();
  await page.waitForURL('**/console/email-templates');
  await shot('mail-email-templates-empty');
  await page.getByRole('link', { name: 'New email template' }).click();
  await page.getByLabel('Name', { exact: true }).fill(input.email_template.name);
  await page.getByLabel('Subject').fill('{{customerName}}, your {{organizationName}} card');
  await page.getByLabel('Message (HTML)').fill('<p>Hi {{customerName}},</p><p>Your membership card is ready. Add it to the Lanyard app and show it at the front desk.</p>');
  await page.getByLabel('Message (plain text)').fill('Hi {{customerName}},\n\nYour card is ready: {{inviteUrl}}');
  await page.getByLabel('Logo').setInputFiles(input.logo);
  await page.waitForFunction(() => document.getElementById('logo').value.startsWith('data:image/png;base64,'));
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.waitForSelector('iframe.email-preview');
  const frame = page.frameLocator('iframe.email-preview');
  const previewTitle = await frame.locator('h1').innerText();
  const previewLogo = await frame.locator('img.logo').count();
  const previewBody = await frame.locator('.content').innerText();
  const buttonColour = await frame.locator('.button-cell').evaluate((cell) => getComputedStyle(cell).backgroundColor);
  const scrolledTo = await page.evaluate(() => location.hash);
  // Chromium paints a frame only once it is in view: the preview is what the page scrolled to.
  await page.locator('iframe.email-preview').scrollIntoViewIfNeeded();
  await frame.locator('img.qr').evaluate((img) => img.decode());
  await shot('mail-email-template-preview');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/\/console\/email-templates\/[0-9a-f]{24}\?saved=1$/);
  const saved = await page.locator('.notice').innerText();
  const savedLogo = await page.frameLocator('iframe.email-preview').locator('img.logo').count();
  await page.locator('iframe.email-preview').scrollIntoViewIfNeeded();
  await shot('mail-email-template-saved');
  await page.getByRole('link', { name: 'Email templates' }).first().click();
  const listed = await page.locator('table').innerText();
  await shot('mail-email-templates-list');
  await page.getByRole('link', { name: 'the default email' }).first().click();
  const defaultTitle = await page.frameLocator('iframe.email-preview').locator('h1').innerText();
  await shot('mail-email-default');

  // A phone.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto('/console/templates/new');
  await shot('mail-templates-form-phone', phone);
  await phone.goto('/console/email-templates/new');
  await shot('mail-email-template-form-phone', phone);
  await phone.close();

  return {
    fieldError, invalid, created, heading, fields, consequence, unconfirmed, deleted,
    previewTitle, previewLogo, previewBody, buttonColour, scrolledTo, saved, savedLogo, listed, defaultTitle,
  };
});
