// A retried payment that the bank wants approved (3-D Secure): ask the server for what Stripe.js
// needs (read from Stripe at the click, never kept in the page or our database), let Stripe.js
// show the bank's check, then ask the server to read the invoice again.  If the bank's check
// fails, say so here and offer another card; the server learns the outcome from Stripe's
// webhooks either way.
(function () {
  'use strict';

  async function clientSecret(form) {
    try {
      var response = await fetch(form.dataset.approveUrl, {
        method: 'POST', credentials: 'same-origin',
        headers: {'X-CSRFToken': form.querySelector('[name=csrfmiddlewaretoken]').value},
      });
      var answer = await response.json();
      return response.ok ? answer.client_secret : null;
    } catch (e) {
      return null;
    }
  }

  document.addEventListener('submit', async function (event) {
    var form = event.target.closest('.approve-form');
    if (!form || typeof Stripe === 'undefined') {
      return;
    }
    event.preventDefault();
    if (form.dataset.busy) {
      return;
    }
    form.dataset.busy = '1';
    var button = form.querySelector('[type=submit]');
    var errors = form.querySelector('.form-error');
    button.disabled = true;
    errors.textContent = '';
    var secret = await clientSecret(form);
    var result = {error: {}};
    if (secret) {
      try {
        result = await Stripe(form.dataset.publishableKey).handleNextAction({clientSecret: secret});
      } catch (e) {
        result = {error: {}};
      }
    }
    if (result.error) {
      // Our own words (translated), not the API's: the customer needs what to do next.
      errors.textContent = form.dataset.errorGeneric;
      form.querySelectorAll('[data-show-on-error]').forEach(function (node) { node.hidden = false; });
      button.disabled = false;
      delete form.dataset.busy;
      return;
    }
    // The native submit: no submit event, so this handler does not run again.
    HTMLFormElement.prototype.submit.call(form);
  });
})();
