// Add a card with the Payment Element: card data goes from the browser to Stripe only.
// Deferred intent: the SetupIntent is created (POST) when the customer submits, then confirmed
// here, 3-D Secure included; the confirmed SetupIntent id is posted to us as an ordinary form.
(function () {
  'use strict';
  var form = document.getElementById('card-form');
  if (!form) {
    return;
  }
  var errors = document.getElementById('card-errors');
  var button = document.getElementById('card-submit');
  var busy = false;

  function fail(message) {
    errors.textContent = message || form.dataset.errorGeneric;
    button.disabled = false;
    button.removeAttribute('aria-busy');
    busy = false;
  }

  // Stripe.js words card and form problems for the customer (in their language); anything else
  // (a failed bank check, an intent in the wrong state) gets our own words.
  function customerMessage(error) {
    if (/_authentication_failure$/.test(error.code || '')) {
      return form.dataset.errorAuthentication;
    }
    if (error.type === 'card_error' || error.type === 'validation_error') {
      return error.message;
    }
    return form.dataset.errorGeneric;
  }

  if (typeof Stripe === 'undefined') {
    // Stripe.js did not load (blocked or offline): say so instead of posting an empty form.
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      fail();
    });
    return;
  }

  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({mode: 'setup', currency: form.dataset.currency, locale: document.documentElement.lang});
  elements.create('payment').mount('#payment-element');

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    // Enter in the card frame submits the form even while the button is disabled.
    if (busy) {
      return;
    }
    busy = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    errors.textContent = '';
    var submitted = await elements.submit();
    if (submitted.error) {
      return fail(customerMessage(submitted.error));
    }
    var body = new FormData();
    body.append('attempt', form.dataset.attempt);
    var response;
    try {
      response = await fetch(form.dataset.setupUrl, {
        method: 'POST', body: body, credentials: 'same-origin',
        headers: {'X-CSRFToken': form.querySelector('[name=csrfmiddlewaretoken]').value},
      });
    } catch (e) {
      return fail();
    }
    var answer = await response.json().catch(function () { return {}; });
    if (!response.ok || !answer.client_secret) {
      return fail(answer.error);
    }
    var result;
    try {
      result = await stripe.confirmSetup({
        elements: elements, clientSecret: answer.client_secret, redirect: 'if_required',
        confirmParams: {return_url: form.dataset.returnUrl},
      });
    } catch (e) {
      return fail();
    }
    if (result.error) {
      return fail(customerMessage(result.error));
    }
    document.getElementById('setup-intent-field').value = result.setupIntent.id;
    // The native submit: no submit event, so this handler does not run again.
    HTMLFormElement.prototype.submit.call(form);
  });
})();
