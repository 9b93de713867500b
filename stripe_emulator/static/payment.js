/*
 * The Payment Element's card form, running in an iframe on the emulator's origin.
 *
 * The merchant page's stripe.js asks this frame (by postMessage) to validate or to
 * confirm an intent; the frame sends the card to the API itself, with the publishable
 * key and the intent's client secret, and answers with the intent or an error only.
 */
(function () {
  'use strict';

  var MESSAGES = {
    incomplete_number: 'Your card number is incomplete.',
    invalid_number: 'Your card number is invalid.',
    incomplete_expiry: "Your card's expiration date is incomplete.",
    invalid_expiry_month: "Your card's expiration month is invalid.",
    invalid_expiry_month_past: "Your card's expiration date is in the past.",
    invalid_expiry_year: "Your card's expiration year is invalid.",
    invalid_expiry_year_past: "Your card's expiration year is in the past.",
    incomplete_cvc: "Your card's security code is incomplete.",
  };
  var BRAND_NAMES = {visa: 'Visa', mastercard: 'Mastercard', amex: 'Amex', discover: 'Discover',
    diners: 'Diners', jcb: 'JCB', unionpay: 'UnionPay'};
  // Which card field an API card error is about, so it can be shown under that field.
  var PARAM_FIELDS = {number: 'number', exp_month: 'expiry', exp_year: 'expiry', cvc: 'cvc'};
  var API_CODE_FIELDS = {incorrect_number: 'number', invalid_number: 'number', expired_card: 'expiry',
    invalid_expiry_month: 'expiry', invalid_expiry_year: 'expiry', incorrect_cvc: 'cvc', invalid_cvc: 'cvc'};

  var frameId = decodeURIComponent(window.location.hash.slice(1));
  var parentOrigin = null;
  var key = null;
  var busy = false;
  var showAll = false;
  var inputs = {
    number: document.getElementById('number'),
    expiry: document.getElementById('expiry'),
    cvc: document.getElementById('cvc'),
  };
  var touched = {number: false, expiry: false, cvc: false};
  var apiErrors = {number: null, expiry: null, cvc: null};

  function digits(value) {
    return value.replace(/\D/g, '');
  }

  function brandOf(number) {
    if (/^4/.test(number)) return 'visa';
    if (/^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))/.test(number)) return 'mastercard';
    if (/^3[47]/.test(number)) return 'amex';
    if (/^3(0[0-5]|[689])/.test(number)) return 'diners';
    if (/^(6011|64[4-9]|65)/.test(number)) return 'discover';
    if (/^35/.test(number)) return 'jcb';
    if (/^62/.test(number)) return 'unionpay';
    return 'unknown';
  }

  function numberLength(brand) {
    return brand === 'amex' ? 15 : brand === 'diners' ? 14 : 16;
  }

  function cvcLength(brand) {
    return brand === 'amex' ? 4 : 3;
  }

  function luhn(number) {
    var sum = 0;
    for (var i = 0; i < number.length; i++) {
      var d = Number(number[number.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function formatNumber(number) {
    var groups = brandOf(number) === 'amex' ? [4, 6, 5] : [4, 4, 4, 4];
    var parts = [];
    var at = 0;
    groups.forEach(function (size) {
      if (at < number.length) parts.push(number.slice(at, at + size));
      at += size;
    });
    return parts.join(' ');
  }

  function formatExpiry(raw) {
    var d = digits(raw);
    // "4" can only be April: write it as 04 so the customer can go on with the year.
    if (d.length === 1 && d > '1') d = '0' + d;
    return d.length > 2 ? d.slice(0, 2) + ' / ' + d.slice(2, 4) : d;
  }

  // Each check answers {state: 'empty' | 'incomplete' | 'invalid' | 'complete', code?}.
  function checkNumber() {
    var number = digits(inputs.number.value);
    if (!number) return {state: 'empty', code: 'incomplete_number'};
    if (number.length < numberLength(brandOf(number))) return {state: 'incomplete', code: 'incomplete_number'};
    if (!luhn(number)) return {state: 'invalid', code: 'invalid_number'};
    return {state: 'complete'};
  }

  function checkExpiry() {
    var d = digits(inputs.expiry.value);
    if (!d) return {state: 'empty', code: 'incomplete_expiry'};
    var month = Number(d.slice(0, 2));
    if (d.length >= 2 && (month < 1 || month > 12)) return {state: 'invalid', code: 'invalid_expiry_month'};
    if (d.length < 4) return {state: 'incomplete', code: 'incomplete_expiry'};
    var year = 2000 + Number(d.slice(2, 4));
    var now = new Date();
    if (year < now.getFullYear()) return {state: 'invalid', code: 'invalid_expiry_year_past'};
    if (year === now.getFullYear() && month < now.getMonth() + 1) {
      return {state: 'invalid', code: 'invalid_expiry_month_past'};
    }
    if (year > now.getFullYear() + 50) return {state: 'invalid', code: 'invalid_expiry_year'};
    return {state: 'complete'};
  }

  function checkCvc() {
    var cvc = digits(inputs.cvc.value);
    if (!cvc) return {state: 'empty', code: 'incomplete_cvc'};
    if (cvc.length < cvcLength(brandOf(digits(inputs.number.value)))) {
      return {state: 'incomplete', code: 'incomplete_cvc'};
    }
    return {state: 'complete'};
  }

  var CHECKS = {number: checkNumber, expiry: checkExpiry, cvc: checkCvc};
  var ORDER = ['number', 'expiry', 'cvc'];

  function validationError(code) {
    return {type: 'validation_error', code: code, message: MESSAGES[code]};
  }

  // Stripe shows a mistake as soon as it is certain, an unfinished field once the
  // customer leaves it, and every problem once they try to pay.
  function shownError(name) {
    if (apiErrors[name]) return apiErrors[name];
    var check = CHECKS[name]();
    if (check.state === 'invalid') return validationError(check.code);
    if (check.state === 'incomplete' && (touched[name] || showAll)) return validationError(check.code);
    if (check.state === 'empty' && showAll) return validationError(check.code);
    return null;
  }

  function render() {
    var first = null;
    ORDER.forEach(function (name) {
      var error = shownError(name);
      document.getElementById(name + '-error').textContent = error ? error.message : '';
      inputs[name].setAttribute('aria-invalid', error ? 'true' : 'false');
      if (error && !first) first = error;
    });
    var brand = brandOf(digits(inputs.number.value));
    document.getElementById('brand').textContent = BRAND_NAMES[brand] || '';
    return first;
  }

  function post(message) {
    if (!parentOrigin) return;
    message.__stripeEmulator = true;
    message.frameId = frameId;
    window.parent.postMessage(message, parentOrigin);
  }

  function emitChange() {
    var error = render();
    var checks = ORDER.map(function (name) { return CHECKS[name](); });
    var event = {
      empty: checks.every(function (c) { return c.state === 'empty'; }),
      complete: checks.every(function (c) { return c.state === 'complete'; }) && !error,
      brand: brandOf(digits(inputs.number.value)),
    };
    if (error) event.error = error;
    post({type: 'change', event: event});
  }

  // Reformat while keeping the caret after the same number of digits.
  function reformat(input, format) {
    var caret = input.selectionStart === null ? input.value.length : input.selectionStart;
    var digitsBefore = digits(input.value.slice(0, caret)).length;
    var value = format(input.value);
    input.value = value;
    var position = 0;
    var seen = 0;
    while (position < value.length && seen < digitsBefore) {
      if (/\d/.test(value[position])) seen++;
      position++;
    }
    if (document.activeElement === input) input.setSelectionRange(position, position);
  }

  inputs.number.addEventListener('input', function () {
    apiErrors.number = null;
    reformat(inputs.number, function (value) {
      var number = digits(value);
      return formatNumber(number.slice(0, numberLength(brandOf(number))));
    });
    emitChange();
    if (checkNumber().state === 'complete' && document.activeElement === inputs.number) inputs.expiry.focus();
  });

  inputs.expiry.addEventListener('input', function (event) {
    apiErrors.expiry = null;
    var deleting = event.inputType && event.inputType.indexOf('delete') === 0;
    // Deleting the " / " separator must remove a digit, or backspace would get stuck.
    if (deleting && /^\d{2} \/?$/.test(inputs.expiry.value)) {
      inputs.expiry.value = inputs.expiry.value.slice(0, 1);
    } else {
      reformat(inputs.expiry, formatExpiry);
    }
    emitChange();
    if (checkExpiry().state === 'complete' && document.activeElement === inputs.expiry) inputs.cvc.focus();
  });

  inputs.cvc.addEventListener('input', function () {
    apiErrors.cvc = null;
    var max = cvcLength(brandOf(digits(inputs.number.value)));
    inputs.cvc.value = digits(inputs.cvc.value).slice(0, max);
    emitChange();
  });

  ORDER.forEach(function (name) {
    inputs[name].addEventListener('blur', function () {
      if (inputs[name].value) touched[name] = true;
      emitChange();
      post({type: 'blur'});
    });
    inputs[name].addEventListener('focus', function () { post({type: 'focus'}); });
    // Enter in a field submits the merchant's form, as on a page without iframes.
    inputs[name].addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && !event.isComposing) {
        event.preventDefault();
        post({type: 'submit'});
      }
    });
  });

  document.getElementById('card-form').addEventListener('submit', function (event) {
    event.preventDefault();
  });

  function validateAll() {
    showAll = true;
    var error = render();
    emitChange();
    if (error) {
      var first = ORDER.filter(function (name) { return shownError(name); })[0];
      if (first) inputs[first].focus();
    }
    return error;
  }

  function setBusy(value) {
    busy = value;
    ORDER.forEach(function (name) { inputs[name].readOnly = value; });
  }

  function encodeForm(value, prefix, out) {
    if (value === undefined || value === null) return out;
    if (Array.isArray(value)) {
      value.forEach(function (item, i) { encodeForm(item, prefix + '[' + i + ']', out); });
    } else if (typeof value === 'object') {
      Object.keys(value).forEach(function (k) { encodeForm(value[k], prefix ? prefix + '[' + k + ']' : k, out); });
    } else {
      out.push(encodeURIComponent(prefix) + '=' + encodeURIComponent(String(value)));
    }
    return out;
  }

  async function confirm(request) {
    if (busy) {
      return {error: {type: 'validation_error', code: 'confirmation_in_progress',
        message: 'A confirmation is already in progress.'}};
    }
    var invalid = validateAll();
    if (invalid) return {error: invalid};
    var clientSecret = String(request.clientSecret);
    var id = clientSecret.slice(0, clientSecret.indexOf('_secret_'));
    var path = (request.kind === 'setup' ? '/v1/setup_intents/' : '/v1/payment_intents/') + encodeURIComponent(id);
    var confirmParams = Object.assign({}, request.confirmParams || {});
    var expiry = digits(inputs.expiry.value);
    var paymentMethodData = Object.assign({}, confirmParams.payment_method_data || {}, {
      type: 'card',
      card: {
        number: digits(inputs.number.value),
        exp_month: String(Number(expiry.slice(0, 2))),
        exp_year: String(2000 + Number(expiry.slice(2, 4))),
        cvc: digits(inputs.cvc.value),
      },
    });
    delete confirmParams.payment_method_data;
    var params = Object.assign({key: key, client_secret: clientSecret, payment_method_data: paymentMethodData},
      confirmParams);
    setBusy(true);
    try {
      var response = await fetch(path + '/confirm', {
        method: 'POST',
        credentials: 'omit',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: encodeForm(params, '', []).join('&'),
      });
      var json = await response.json().catch(function () { return null; });
      if (!response.ok) {
        var error = (json && json.error) || {type: 'api_error', message: 'An unknown error occurred.'};
        var field = PARAM_FIELDS[error.param] || API_CODE_FIELDS[error.code];
        if (error.type === 'card_error' && field) {
          apiErrors[field] = error;
          render();
        }
        return {error: error};
      }
      return {intent: json};
    } catch (e) {
      return {error: {type: 'api_connection_error', message: 'We could not connect to Stripe. Please try again.'}};
    } finally {
      setBusy(false);
    }
  }

  function applyOptions(options) {
    options = options || {};
    var appearance = options.appearance || {};
    var variables = appearance.variables || {};
    var root = document.documentElement.style;
    if (appearance.theme === 'night') {
      root.setProperty('--color-background', '#30313d');
      root.setProperty('--color-text', '#ffffff');
      root.setProperty('--color-text-secondary', '#c4c5ca');
      root.setProperty('--color-border', '#424353');
    }
    var map = {colorPrimary: '--color-primary', colorText: '--color-text', colorDanger: '--color-danger',
      colorBackground: '--color-background', colorTextSecondary: '--color-text-secondary',
      fontFamily: '--font-family', borderRadius: '--border-radius', spacingUnit: '--spacing'};
    Object.keys(map).forEach(function (name) {
      if (typeof variables[name] === 'string') root.setProperty(map[name], variables[name]);
    });
    if (options.readOnly !== undefined) setBusy(!!options.readOnly);
  }

  function clear() {
    ORDER.forEach(function (name) {
      inputs[name].value = '';
      touched[name] = false;
      apiErrors[name] = null;
    });
    showAll = false;
    emitChange();
  }

  function reportSize() {
    post({type: 'resize', height: document.documentElement.scrollHeight});
  }

  window.addEventListener('message', function (event) {
    var data = event.data;
    if (event.source !== window.parent || !data || !data.__stripeEmulator || data.frameId !== frameId) return;
    if (data.type === 'init') {
      // The first page to initialise this frame is the one it answers, and only that one.
      if (parentOrigin) return;
      parentOrigin = event.origin;
      key = data.key;
      applyOptions(data.options);
      post({type: 'ready'});
      reportSize();
      if (window.ResizeObserver) new ResizeObserver(reportSize).observe(document.body);
      return;
    }
    if (event.origin !== parentOrigin) return;
    var respond = function (result) { post({type: 'response', requestId: data.requestId, result: result}); };
    switch (data.type) {
      case 'validate':
        var error = validateAll();
        respond(error ? {error: error} : {});
        break;
      case 'confirm':
        confirm(data).then(respond);
        break;
      case 'update':
        applyOptions(data.options);
        break;
      case 'focus':
        inputs.number.focus();
        break;
      case 'blur':
        if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
        break;
      case 'clear':
        clear();
        break;
      default:
        break;
    }
  });

  // The frame doesn't know who embeds it yet, so this first note carries nothing but its name.
  window.parent.postMessage({__stripeEmulator: true, frameId: frameId, type: 'frame-loaded'}, '*');
})();
