/*
 * Stripe.js v3 stand-in, served by the Stripe emulator at /v3/.
 *
 * Same global (Stripe), same method names and promise shapes as https://js.stripe.com/v3/
 * for the subset a card-only integration uses, so a page switches between the two by
 * changing one <script src>. The card form lives in an iframe on the emulator's origin,
 * which talks to the API itself; this script only sees intents, never card data.
 */
(function () {
  'use strict';

  if (window.Stripe) {
    return;
  }

  // The API, the card-form frame and the 3-D Secure page all live where this script came from.
  var ORIGIN = (function () {
    try {
      return new URL(document.currentScript.src).origin;
    } catch (e) {
      return '__STRIPE_EMULATOR_ORIGIN__';
    }
  })();

  var AUTH_FAILURE_MESSAGE =
    'We are unable to authenticate your payment method. Please choose a different payment method and try again.';

  var KINDS = {
    setup: {prefix: 'seti_', path: '/v1/setup_intents/', field: 'setupIntent', object: 'setup_intent',
      lastError: 'last_setup_error', method: 'confirmSetup'},
    payment: {prefix: 'pi_', path: '/v1/payment_intents/', field: 'paymentIntent', object: 'payment_intent',
      lastError: 'last_payment_error', method: 'confirmPayment'},
  };

  var frameCount = 0;

  class IntegrationError extends Error {
    constructor(message) {
      super(message);
      this.name = 'IntegrationError';
    }
  }

  // Stripe's form encoding: nested objects as a[b][c]=v, arrays as a[0]=v.
  function encodeForm(value, prefix, out) {
    out = out || [];
    if (value === undefined || value === null) {
      return out;
    }
    if (Array.isArray(value)) {
      value.forEach(function (item, i) { encodeForm(item, prefix + '[' + i + ']', out); });
    } else if (typeof value === 'object') {
      Object.keys(value).forEach(function (k) { encodeForm(value[k], prefix ? prefix + '[' + k + ']' : k, out); });
    } else {
      out.push(encodeURIComponent(prefix) + '=' + encodeURIComponent(String(value)));
    }
    return out;
  }

  async function callApi(method, path, params) {
    var body = encodeForm(params).join('&');
    var url = ORIGIN + path + (method === 'GET' ? '?' + body : '');
    var response;
    try {
      response = await fetch(url, {
        method: method,
        credentials: 'omit',
        headers: method === 'POST' ? {'Content-Type': 'application/x-www-form-urlencoded'} : {},
        body: method === 'POST' ? body : undefined,
      });
    } catch (e) {
      return {error: {type: 'api_connection_error', message: 'We could not connect to Stripe. Please try again.'}};
    }
    var json = null;
    try {
      json = await response.json();
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      return {error: (json && json.error) || {type: 'api_error', message: 'An unknown error occurred.'}};
    }
    return {data: json};
  }

  function parseClientSecret(clientSecret, method, kind) {
    var at = typeof clientSecret === 'string' ? clientSecret.indexOf('_secret_') : -1;
    var id = at > 0 ? clientSecret.slice(0, at) : '';
    var found = kind ? (id.indexOf(KINDS[kind].prefix) === 0 ? kind : null)
      : (id.indexOf('seti_') === 0 ? 'setup' : id.indexOf('pi_') === 0 ? 'payment' : null);
    if (!found) {
      var shape = kind ? KINDS[kind].prefix + '${id}_secret_${secret}' : '${id}_secret_${secret}';
      throw new IntegrationError('Invalid value for ' + method + ': clientSecret should be a client secret of the form '
        + shape + '. You specified: ' + clientSecret + '.');
    }
    return {id: id, kind: found, clientSecret: clientSecret};
  }

  function retrieveIntent(key, parsed) {
    return callApi('GET', KINDS[parsed.kind].path + parsed.id, {key: key, client_secret: parsed.clientSecret});
  }

  function authenticationError(kind, intent) {
    var spec = KINDS[kind];
    var error = Object.assign({
      type: 'invalid_request_error',
      code: spec.object + '_authentication_failure',
      message: AUTH_FAILURE_MESSAGE,
    }, intent[spec.lastError] || {});
    error[spec.object] = intent;
    return error;
  }

  function withRedirectResult(returnUrl, kind, intent, status) {
    var url = new URL(returnUrl, window.location.href);
    var object = KINDS[kind].object;
    url.searchParams.set(object, intent.id);
    url.searchParams.set(object + '_client_secret', intent.client_secret);
    url.searchParams.set('redirect_status', status);
    return url.toString();
  }

  // Real Stripe.js leaves the promise pending while the browser navigates away.
  function navigate(url) {
    window.location.assign(url);
    return new Promise(function () {});
  }

  function challengeUrl(nextAction) {
    if (!nextAction) {
      return null;
    }
    if (nextAction.type === 'redirect_to_url' && nextAction.redirect_to_url) {
      return nextAction.redirect_to_url.url;
    }
    if (nextAction.type === 'use_stripe_sdk' && nextAction.use_stripe_sdk) {
      return nextAction.use_stripe_sdk.stripe_js || nextAction.use_stripe_sdk.url || null;
    }
    return null;
  }

  // The 3-D Secure challenge, in a modal on the merchant page as Stripe shows it.
  function showChallenge(url, intentId) {
    return new Promise(function (resolve) {
      var previousFocus = document.activeElement;
      // The API names the page by its public URL, which may differ in spelling from ORIGIN.
      var challengeOrigin = new URL(url, window.location.href).origin;
      var overlay = document.createElement('div');
      overlay.className = '__PrivateStripeEmulator3DS';
      overlay.setAttribute('role', 'dialog');
      overlay.setAttribute('aria-modal', 'true');
      overlay.setAttribute('aria-label', '3D Secure authentication');
      // Busy until the bank's page says it is on screen and can take input (see onMessage).
      overlay.setAttribute('aria-busy', 'true');
      overlay.style.cssText = 'position:fixed;inset:0;z-index:2147483647;background:rgba(26,31,54,.55);'
        + 'display:flex;align-items:center;justify-content:center;padding:8px;box-sizing:border-box;';
      var box = document.createElement('div');
      box.style.cssText = 'position:relative;background:#fff;border-radius:8px;overflow:hidden;'
        + 'width:min(480px,100%);height:min(600px,100%);box-shadow:0 12px 40px rgba(0,0,0,.3);';
      var frame = document.createElement('iframe');
      frame.name = '__privateStripeFrame' + (++frameCount);
      frame.title = '3D Secure authentication';
      frame.src = url;
      frame.style.cssText = 'border:0;width:100%;height:100%;display:block;';
      var close = document.createElement('button');
      close.type = 'button';
      close.textContent = '\u00d7';
      close.setAttribute('aria-label', 'Cancel authentication');
      close.style.cssText = 'position:absolute;top:4px;right:4px;width:44px;height:44px;border:0;'
        + 'background:transparent;font:28px/1 sans-serif;color:#697386;cursor:pointer;';
      box.appendChild(frame);
      box.appendChild(close);
      overlay.appendChild(box);

      var done = false;
      function finish() {
        if (done) {
          return;
        }
        done = true;
        window.removeEventListener('message', onMessage);
        overlay.remove();
        if (previousFocus && previousFocus.focus) {
          previousFocus.focus();
        }
        resolve();
      }
      function onMessage(event) {
        var data = event.data;
        if (event.origin !== challengeOrigin || event.source !== frame.contentWindow) {
          return;
        }
        if (!data || !data.__stripeEmulator || data.intent !== intentId) {
          return;
        }
        if (data.type === '3ds-ready') {
          // The bank's page has painted, but clicks are routed by what the compositor last drew,
          // and this page's frame embedding it may still be on its way: let two pass first.
          requestAnimationFrame(function () {
            requestAnimationFrame(function () { overlay.setAttribute('aria-busy', 'false'); });
          });
        } else if (data.type === '3ds-complete') {
          finish();
        }
      }
      // Closing the challenge abandons it, which the bank reports as a failed authentication.
      close.addEventListener('click', function () {
        fetch(url, {method: 'POST', credentials: 'omit', body: new URLSearchParams({outcome: 'fail'})})
          .catch(function () { return null; })
          .then(finish);
      });
      window.addEventListener('message', onMessage);
      document.body.appendChild(overlay);
      frame.focus();
    });
  }

  class PaymentElement {
    constructor(elements, options) {
      this._elements = elements;
      this._options = options || {};
      this._handlers = {};
      this._frame = null;
      this._container = null;
      this._ready = false;
      this._queue = [];
      this._pending = {};
      this._requests = 0;
      this._frameId = '__privateStripeFrame' + (++frameCount);
      this._onMessage = this._onMessage.bind(this);
    }

    mount(target) {
      var node = typeof target === 'string' ? document.querySelector(target) : target;
      if (!node || !node.appendChild) {
        throw new IntegrationError('The selector you specified (' + target + ') applies to no DOM elements that are '
          + 'currently on the page.\nMake sure the element exists on the page before calling mount().');
      }
      if (this._frame) {
        throw new IntegrationError('This Element is already mounted. Use `unmount` to unmount the Element before '
          + 're-mounting.');
      }
      var container = document.createElement('div');
      container.className = '__PrivateStripeElement';
      container.style.cssText = 'margin:0;padding:0;border:none;display:block;background:transparent;'
        + 'position:relative;opacity:1;';
      var frame = document.createElement('iframe');
      frame.name = this._frameId;
      frame.title = 'Secure payment input frame';
      frame.setAttribute('allowtransparency', 'true');
      frame.setAttribute('scrolling', 'no');
      frame.src = ORIGIN + '/v3/elements/payment.html#' + encodeURIComponent(this._frameId);
      frame.style.cssText = 'border:0;margin:0;padding:0;width:100%;min-width:100%;display:block;height:220px;'
        + 'overflow:hidden;color-scheme:normal;';
      container.appendChild(frame);
      window.addEventListener('message', this._onMessage);
      node.appendChild(container);
      this._container = container;
      this._frame = frame;
      return undefined;
    }

    unmount() {
      if (!this._frame) {
        return;
      }
      window.removeEventListener('message', this._onMessage);
      this._container.remove();
      this._frame = null;
      this._container = null;
      this._ready = false;
      var pending = this._pending;
      this._pending = {};
      this._queue = [];
      Object.keys(pending).forEach(function (id) {
        pending[id]({error: {type: 'validation_error', message: 'The Payment Element was unmounted.'}});
      });
    }

    destroy() {
      this.unmount();
      this._elements._remove(this);
      this._handlers = {};
    }

    on(event, handler) {
      (this._handlers[event] = this._handlers[event] || []).push(handler);
      return this;
    }

    once(event, handler) {
      var self = this;
      function wrapper(payload) {
        self.off(event, wrapper);
        handler(payload);
      }
      return this.on(event, wrapper);
    }

    off(event, handler) {
      var list = this._handlers[event] || [];
      this._handlers[event] = handler ? list.filter(function (h) { return h !== handler; }) : [];
      return this;
    }

    focus() {
      this._send({type: 'focus'});
    }

    blur() {
      this._send({type: 'blur'});
    }

    clear() {
      this._send({type: 'clear'});
    }

    update(options) {
      Object.assign(this._options, options || {});
      this._send({type: 'update', options: this._frameOptions()});
    }

    collapse() {
      return this;
    }

    _frameOptions() {
      var elementsOptions = this._elements._options;
      return {
        appearance: elementsOptions.appearance || {},
        locale: elementsOptions.locale || 'auto',
        readOnly: !!this._options.readOnly,
      };
    }

    _emit(event, payload) {
      (this._handlers[event] || []).slice().forEach(function (handler) {
        try {
          handler(payload);
        } catch (e) {
          setTimeout(function () { throw e; });
        }
      });
    }

    _send(message) {
      if (!this._frame) {
        return;
      }
      message.__stripeEmulator = true;
      message.frameId = this._frameId;
      if (this._ready || message.type === 'init') {
        this._frame.contentWindow.postMessage(message, ORIGIN);
      } else {
        this._queue.push(message);
      }
    }

    _request(type, payload) {
      var self = this;
      if (!this._frame) {
        return Promise.resolve({error: {type: 'validation_error',
          message: 'The Payment Element is not mounted.'}});
      }
      return new Promise(function (resolve) {
        var id = ++self._requests;
        self._pending[id] = resolve;
        self._send(Object.assign({type: type, requestId: id}, payload || {}));
      });
    }

    _onMessage(event) {
      var data = event.data;
      if (!this._frame || event.origin !== ORIGIN || event.source !== this._frame.contentWindow) {
        return;
      }
      if (!data || !data.__stripeEmulator || data.frameId !== this._frameId) {
        return;
      }
      switch (data.type) {
        case 'frame-loaded':
          this._send({type: 'init', key: this._elements._stripe._key, options: this._frameOptions()});
          break;
        case 'ready':
          this._ready = true;
          this._queue.splice(0).forEach(this._send, this);
          this._emit('ready', {elementType: 'payment'});
          break;
        case 'resize':
          this._frame.style.height = Math.ceil(data.height) + 'px';
          break;
        case 'change':
          this._emit('change', Object.assign({elementType: 'payment', collapsed: false, value: {type: 'card'}},
            data.event));
          break;
        case 'focus':
        case 'blur':
          this._emit(data.type, {elementType: 'payment'});
          break;
        case 'submit':
          var form = this._container.closest('form');
          if (form && form.requestSubmit) {
            form.requestSubmit();
          }
          break;
        case 'response':
          var resolve = this._pending[data.requestId];
          delete this._pending[data.requestId];
          if (resolve) {
            resolve(data.result);
          }
          break;
        default:
          break;
      }
    }
  }

  class Elements {
    constructor(stripe, options) {
      this._stripe = stripe;
      this._options = Object.assign({}, options || {});
      this._created = {};
    }

    create(type, options) {
      if (type !== 'payment') {
        throw new IntegrationError('The Stripe emulator supports only the `payment` Element; got `' + type + '`.');
      }
      if (this._created.payment) {
        throw new IntegrationError('Can only create one Element of type payment.');
      }
      this._created.payment = new PaymentElement(this, options);
      return this._created.payment;
    }

    getElement(type) {
      return this._created[type] || null;
    }

    update(options) {
      Object.assign(this._options, options || {});
      if (this._created.payment) {
        this._created.payment.update({});
      }
    }

    fetchUpdates() {
      return Promise.resolve({});
    }

    async submit() {
      var element = this._created.payment;
      if (!element || !element._frame) {
        throw new IntegrationError('elements.submit(): the Payment Element must be mounted first.');
      }
      var result = await element._request('validate');
      return result.error ? {error: result.error} : {selectedPaymentMethod: 'card'};
    }

    _remove(element) {
      if (this._created.payment === element) {
        delete this._created.payment;
      }
    }
  }

  class StripeInstance {
    constructor(key, options) {
      this._key = key;
      this._options = options || {};
    }

    elements(options) {
      return new Elements(this, options);
    }

    confirmSetup(options) {
      return this._confirm('setup', options);
    }

    confirmPayment(options) {
      return this._confirm('payment', options);
    }

    async handleNextAction(options) {
      var parsed = parseClientSecret(options && options.clientSecret, 'handleNextAction', null);
      var found = await retrieveIntent(this._key, parsed);
      if (found.error) {
        return {error: found.error};
      }
      return this._finish(parsed, found.data, 'if_required', null);
    }

    retrieveSetupIntent(clientSecret) {
      return this._retrieve(parseClientSecret(clientSecret, 'retrieveSetupIntent', 'setup'));
    }

    retrievePaymentIntent(clientSecret) {
      return this._retrieve(parseClientSecret(clientSecret, 'retrievePaymentIntent', 'payment'));
    }

    async _retrieve(parsed) {
      var found = await retrieveIntent(this._key, parsed);
      if (found.error) {
        return {error: found.error};
      }
      var result = {};
      result[KINDS[parsed.kind].field] = found.data;
      return result;
    }

    // Integration mistakes throw synchronously, as in Stripe.js; everything else resolves.
    _confirm(kind, options) {
      options = options || {};
      var method = KINDS[kind].method;
      var redirect = options.redirect || 'always';
      if (redirect !== 'always' && redirect !== 'if_required') {
        throw new IntegrationError(method + ': `redirect` must be either `always` or `if_required`.');
      }
      var confirmParams = Object.assign({}, options.confirmParams || {});
      if (redirect === 'always' && !confirmParams.return_url) {
        throw new IntegrationError(method + '(): the `confirmParams.return_url` argument is required unless '
          + 'passing `redirect: \'if_required\'`');
      }
      var elements = options.elements;
      var clientSecret = options.clientSecret || (elements && elements._options.clientSecret);
      if (!clientSecret) {
        throw new IntegrationError(method + '(): the `clientSecret` argument is required, either here or in '
          + 'stripe.elements().');
      }
      var parsed = parseClientSecret(clientSecret, method, kind);
      var element = elements && elements.getElement('payment');
      if (elements && (!element || !element._frame)) {
        throw new IntegrationError(method + '(): the Payment Element must be mounted before confirming.');
      }
      if (!elements && !confirmParams.payment_method) {
        throw new IntegrationError(method + '(): pass either `elements` or `confirmParams.payment_method`.');
      }
      return this._confirmWith(parsed, element, confirmParams, redirect);
    }

    async _confirmWith(parsed, element, confirmParams, redirect) {
      var result;
      if (element) {
        result = await element._request('confirm', {
          kind: parsed.kind,
          clientSecret: parsed.clientSecret,
          confirmParams: confirmParams,
        });
      } else {
        var sent = await callApi('POST', KINDS[parsed.kind].path + parsed.id + '/confirm',
          Object.assign({key: this._key, client_secret: parsed.clientSecret}, confirmParams));
        result = sent.error ? {error: sent.error} : {intent: sent.data};
      }
      if (result.error) {
        return {error: result.error};
      }
      return this._finish(parsed, result.intent, redirect, confirmParams.return_url || null);
    }

    async _finish(parsed, intent, redirect, returnUrl) {
      var spec = KINDS[parsed.kind];
      if (intent.status === 'requires_action') {
        var nextAction = intent.next_action || {};
        // A redirect-based action leaves the page; its page sends the customer to return_url.
        if (nextAction.type === 'redirect_to_url' && redirect === 'always') {
          return navigate(nextAction.redirect_to_url.url);
        }
        var url = challengeUrl(nextAction);
        if (!url) {
          var unsupported = {type: 'invalid_request_error', code: 'unsupported_next_action',
            message: 'The Stripe emulator cannot handle the next action `' + nextAction.type + '`.'};
          unsupported[spec.object] = intent;
          return {error: unsupported};
        }
        await showChallenge(url, intent.id);
        var found = await retrieveIntent(this._key, parsed);
        if (found.error) {
          return {error: found.error};
        }
        intent = found.data;
        if (intent.status === 'requires_payment_method' || intent.status === 'canceled') {
          return {error: authenticationError(parsed.kind, intent)};
        }
      }
      if (intent.status === 'requires_payment_method' && intent[spec.lastError]) {
        var failure = Object.assign({}, intent[spec.lastError]);
        failure[spec.object] = intent;
        return {error: failure};
      }
      if (redirect === 'always' && returnUrl) {
        var status = intent.status === 'processing' ? 'processing' : 'succeeded';
        return navigate(withRedirectResult(returnUrl, parsed.kind, intent, status));
      }
      var result = {};
      result[spec.field] = intent;
      return result;
    }
  }

  function Stripe(key, options) {
    if (typeof key !== 'string' || !key) {
      throw new IntegrationError('Please call Stripe() with your publishable key. You used an empty string.');
    }
    if (key.indexOf('sk_') === 0) {
      throw new IntegrationError('You should not use your secret key with Stripe.js.\n'
        + 'Please pass a publishable key instead.');
    }
    // Works with and without `new`, as Stripe.js does.
    return new StripeInstance(key, options);
  }
  Stripe.version = 3;

  window.Stripe = Stripe;
})();
