// The console's own pages in a real browser (tests/tests/console_pages.rs): sign-in, the
// dashboard, customers (list, onboard form with its field errors, a customer's page with the
// invitation QR), settings (an API key made and shown once), on a laptop and a phone, by
// keyboard where it matters. Screenshots of each page are kept.
import { run } from './harness.mjs';

run(async ({ page, input, shot }) => {
  const seen = {};
  await page.goto('/console');
  // Not signed in: the sign-in page.
  seen.signInUrl = new URL(page.url()).pathname;
  await page.getByLabel('Email').fill(input.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  seen.wrongPassword = await page.getByRole('alert').innerText();
  await shot('console-sign-in-refused');
  await page.getByLabel('Email').fill(input.email);
  await page.getByLabel('Password').fill(input.password);
  await page.getByLabel('Password').press('Enter');
  await page.waitForURL('**/console');
  seen.dashboardHeading = await page.locator('h1').innerText();
  // The first Tab reaches the skip link, which leads to the content.
  await page.keyboard.press('Tab');
  seen.firstFocus = await page.evaluate(() => document.activeElement.textContent.trim());
  await shot('console-dashboard');

  await page.getByRole('link', { name: 'Customers', exact: true }).click();
  await page.getByRole('link', { name: 'Onboard a customer' }).click();
  await shot('console-onboard');
  // A bad email: the error beside the field, the field marked invalid.
  await page.getByLabel('Customer name').fill('Jane Doe');
  await page.getByLabel('Email address').fill('jane-at-example.com');
  await page.getByRole('button', { name: 'Onboard' }).click();
  seen.emailError = await page.locator('#email-error').innerText();
  seen.emailInvalid = await page.getByLabel('Email address').getAttribute('aria-invalid');
  seen.nameKept = await page.getByLabel('Customer name').inputValue();
  await shot('console-onboard-errors');
  // SMS without the organisation's label: its error; the email fields are hidden then.
  await page.getByLabel('SMS').check();
  seen.emailHiddenForSms = await page.getByLabel('Email address').isHidden();
  await page.getByLabel('Phone number with country code').fill('+14155550123');
  await page.getByRole('button', { name: 'Onboard' }).click();
  seen.labelError = await page.locator('#organizationLabel-error').innerText();
  // By email with auto-issue: a template's required value left empty is named beside it.
  await page.locator('input[name=medium][value=email]').check();
  await page.getByLabel('Email address').fill('jane@example.com');
  await page.getByLabel('Template', { exact: true }).selectOption({ label: input.template });
  await page.getByLabel('Skill', { exact: false }).fill('Climbing');
  await page.getByRole('button', { name: 'Onboard' }).click();
  seen.valueError = await page.locator('.field-error').first().innerText();
  await shot('console-onboard-value-error');
  await page.getByLabel('Level', { exact: false }).fill('Expert');
  await page.getByRole('button', { name: 'Onboard' }).click();
  await page.waitForURL('**/console/customers/*');
  seen.notice = await page.getByRole('status').first().innerText();
  seen.customerHeading = await page.locator('h1').innerText();
  seen.qr = await page.locator('.qr svg').count();
  seen.invitation = await page.getByLabel('Invitation link').inputValue();
  await shot('console-customer');

  await page.getByRole('link', { name: 'Customers', exact: true }).click();
  seen.rows = await page.locator('tbody tr').count();
  await page.getByRole('link', { name: 'Onboarded', exact: true }).click();
  seen.onboardedEmpty = await page.locator('main').innerText();
  await page.getByRole('link', { name: 'All', exact: true }).click();
  await page.getByLabel('Search by name, email or phone').fill('jane@');
  await page.getByRole('button', { name: 'Search' }).click();
  seen.searchRows = await page.locator('tbody tr').count();
  await shot('console-customers');

  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel("New key's name").fill('CRM integration');
  await page.getByRole('button', { name: 'Make a key' }).click();
  seen.newKey = await page.locator('#new-key').innerText();
  await shot('console-settings');
  await page.getByRole('link', { name: 'Settings' }).click();
  seen.keysListed = await page.locator('tbody tr', { hasText: 'CRM integration' }).count();
  seen.keyShownAgain = (await page.locator('#new-key').count()) > 0;

  // A phone: the navigation folds under the Menu button.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/console');
  seen.navHiddenOnPhone = await page.getByRole('link', { name: 'Settings' }).isHidden();
  await shot('console-dashboard-phone');
  await page.getByRole('button', { name: 'Menu' }).click();
  seen.navShownAfterMenu = await page.getByRole('link', { name: 'Settings' }).isVisible();
  await shot('console-nav-phone');
  await page.goto('/console/customers');
  await shot('console-customers-phone');
  await page.goto('/console/settings');
  await shot('console-settings-phone');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL('**/console/sign-in');
  seen.afterSignOut = new URL(page.url()).pathname;
  return seen;
});
