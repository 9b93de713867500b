// Add a card with the Payment Element: card data goes from the browser to Stripe only.
// Deferred intent: the SetupIntent is created (POST) when the customer submits, then confirmed
// here, 3-D Secure included; the confirmed SetupIntent id is posted to us as an ordinary form.
(function () {
  'use strict';
  var form = document.getElementById('card-form');
  if (!form || typeof Stripe === 'undefined') {
    return;
  }
  var errors = document.getElementById('card-errors');
  var button = document.getElementById('card-submit');
  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({mode: 'setup', currency: form.dataset.currency, locale: document.documentElement.lang});
  elements.create('payment').mount('#payment-element');

  function fail(message) {
    errors.textContent = message || form.dataset.errorGeneric;
    button.disabled = false;
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    button.disabled = true;
    errors.textContent = '';
    var submitted = await elements.submit();
    if (submitted.error) {
      return fail(submitted.error.message);
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
    var result = await stripe.confirmSetup({
      elements: elements, clientSecret: answer.client_secret, redirect: 'if_required',
      confirmParams: {return_url: form.dataset.returnUrl},
    });
    if (result.error) {
      return fail(result.error.message);
    }
    document.getElementById('setup-intent-field').value = result.setupIntent.id;
    HTMLFormElement.prototype.submit.call(form);
  });
})();
