// A retried payment that the bank wants approved (3-D Secure): let Stripe.js show the bank's
// check, then ask the server to read the invoice again.
(function () {
  'use strict';
  document.addEventListener('submit', async function (event) {
    var form = event.target.closest('.approve-form');
    if (!form || typeof Stripe === 'undefined' || form.dataset.done) {
      return;
    }
    event.preventDefault();
    var stripe = Stripe(form.dataset.publishableKey);
    await stripe.handleNextAction({clientSecret: form.dataset.clientSecret});
    form.dataset.done = '1';
    HTMLFormElement.prototype.submit.call(form);
  });
})();
