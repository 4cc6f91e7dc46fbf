// Gatehouse passkeys demo (development only). Plain JavaScript, no
// libraries: it calls this server's API on its own origin and keeps the
// tokens it gets in memory only (never in storage or cookies of its own).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // The tokens of the current sign-in. enroll is the enrollment_token of a
  // password sign-in that must add a second factor first: adding a passkey
  // with it finishes that sign-in.
  const state = { access: null, refresh: null, enroll: null, email: null };

  const buttons = ['login', 'register', 'add-passkey', 'passkey-signin', 'signout', 'refresh-passkeys'].map($);

  // ---- base64url and JSON helpers ----------------------------------------

  function b64urlToBuffer(s) {
    let b64 = String(s).replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufferToB64url(buf) {
    if (buf === null || buf === undefined) return null;
    const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let bin = '';
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // claimsOf decodes the payload of a JWT (without checking it: the
  // server did; this is only to show what the token says).
  function claimsOf(jwt) {
    const parts = typeof jwt === 'string' ? jwt.split('.') : [];
    if (parts.length !== 3) return null;
    try {
      return JSON.parse(new TextDecoder().decode(b64urlToBuffer(parts[1])));
    } catch (e) {
      return null;
    }
  }

  function shorten(tok) {
    return typeof tok === 'string' && tok.length > 16 ? tok.slice(0, 12) + '… (' + tok.length + ' characters, kept in memory)' : tok;
  }

  // forDisplay is a response as the page shows it: tokens shortened, the
  // access token's claims decoded beside it.
  function forDisplay(body) {
    if (!body || typeof body !== 'object') return body;
    const claims = typeof body.access_token === 'string' ? claimsOf(body.access_token) : null;
    const out = claims ? { amr: claims.amr || [] } : {};
    Object.assign(out, body);
    for (const k of ['access_token', 'refresh_token', 'mfa_token', 'enrollment_token', 'passkey_token', 'registration_token']) {
      if (typeof out[k] === 'string') out[k] = shorten(out[k]);
    }
    if (claims) out.access_token_claims = claims;
    return out;
  }

  // ---- the API ---------------------------------------------------------

  class APIError extends Error {
    constructor(status, problem) {
      let msg = (problem && (problem.detail || problem.title)) || 'The server answered ' + status + '.';
      const fields = problem && Array.isArray(problem.errors) ? problem.errors : [];
      const details = fields.map((f) => (f.field ? f.field + ': ' : '') + (f.message || f.rule || '')).filter(Boolean);
      if (details.length) msg += ' ' + details.join(' ');
      super(msg);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new Error('The server could not be reached (' + e.message + ').');
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = { body: text };
      }
    }
    if (!res.ok) throw new APIError(res.status, data);
    return data;
  }

  // ---- WebAuthn --------------------------------------------------------

  function requireWebAuthn() {
    if (!window.isSecureContext) {
      throw new Error('Passkeys need a secure context: open this page over https, or on http://localhost.');
    }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      throw new Error('This browser does not support passkeys (WebAuthn).');
    }
  }

  function copyJSON(o) {
    return JSON.parse(JSON.stringify(o));
  }

  // creationOptions turns PublicKeyCredentialCreationOptionsJSON into what
  // navigator.credentials.create takes.
  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const o = copyJSON(json);
    o.challenge = b64urlToBuffer(o.challenge);
    o.user = Object.assign({}, o.user, { id: b64urlToBuffer(o.user.id) });
    if (Array.isArray(o.excludeCredentials)) {
      o.excludeCredentials = o.excludeCredentials.map((c) => Object.assign({}, c, { id: b64urlToBuffer(c.id) }));
    }
    return o;
  }

  // requestOptions turns PublicKeyCredentialRequestOptionsJSON into what
  // navigator.credentials.get takes.
  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const o = copyJSON(json);
    o.challenge = b64urlToBuffer(o.challenge);
    if (Array.isArray(o.allowCredentials)) {
      o.allowCredentials = o.allowCredentials.map((c) => Object.assign({}, c, { id: b64urlToBuffer(c.id) }));
    }
    return o;
  }

  // credentialJSON is what the server takes: the credential's toJSON(),
  // or the same built by hand where the browser lacks it.
  function credentialJSON(cred) {
    if (typeof cred.toJSON === 'function') return cred.toJSON();
    const r = cred.response;
    const out = {
      id: cred.id,
      rawId: bufferToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: typeof cred.getClientExtensionResults === 'function' ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: bufferToB64url(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufferToB64url(r.attestationObject);
      out.response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
      if (typeof r.getAuthenticatorData === 'function') out.response.authenticatorData = bufferToB64url(r.getAuthenticatorData());
      if (typeof r.getPublicKeyAlgorithm === 'function') out.response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
      if (typeof r.getPublicKey === 'function') {
        const pk = r.getPublicKey();
        if (pk) out.response.publicKey = bufferToB64url(pk);
      }
    } else {
      out.response.authenticatorData = bufferToB64url(r.authenticatorData);
      out.response.signature = bufferToB64url(r.signature);
      out.response.userHandle = r.userHandle ? bufferToB64url(r.userHandle) : null;
    }
    return out;
  }

  // webauthnError explains what navigator.credentials refused.
  function webauthnError(e, creating) {
    switch (e && e.name) {
      case 'NotAllowedError':
        return new Error('The passkey request was cancelled, timed out or refused by the browser (' + e.name + ').');
      case 'InvalidStateError':
        return new Error(creating ? 'This authenticator already holds a passkey for this account.' : 'The authenticator refused the request (' + e.name + ').');
      case 'SecurityError':
        return new Error('The browser refused the relying party: open this page at the server\'s issuer URL, whose host is the RP ID (' + e.message + ').');
      case 'NotSupportedError':
        return new Error('No authenticator supports what the server asked for (' + e.message + ').');
      default:
        return new Error('The passkey request failed: ' + (e && e.message ? e.message : String(e)));
    }
  }

  async function createCredential(options) {
    requireWebAuthn();
    try {
      return await navigator.credentials.create({ publicKey: creationOptions(options) });
    } catch (e) {
      throw webauthnError(e, true);
    }
  }

  async function getCredential(options) {
    requireWebAuthn();
    try {
      return await navigator.credentials.get({ publicKey: requestOptions(options) });
    } catch (e) {
      throw webauthnError(e, false);
    }
  }

  // ---- what the page shows ---------------------------------------------

  // show puts an outcome in the status line (data-step names the step,
  // data-state is busy, ok or error, data-seq counts the steps run) and,
  // with data, the JSON of the last response.
  function show(step, stateName, message, data) {
    const st = $('status');
    if (stateName === 'busy') st.dataset.seq = String(Number(st.dataset.seq || 0) + 1);
    st.textContent = message;
    st.dataset.state = stateName;
    st.dataset.step = step;
    st.className = stateName === 'error' ? 'error' : stateName === 'ok' ? 'ok' : '';
    if (data !== undefined) $('result').textContent = JSON.stringify(data, null, 2);
  }

  function showSession() {
    const claims = claimsOf(state.access);
    const amr = claims && Array.isArray(claims.amr) ? claims.amr : [];
    const out = $('amr');
    out.textContent = amr.length ? amr.join(', ') : 'none';
    out.dataset.amr = JSON.stringify(amr);
    const s = $('session');
    if (state.access) {
      s.textContent = 'Signed in' + (state.email ? ' as ' + state.email : '') + '.';
    } else if (state.enroll) {
      s.textContent = 'Password accepted: add a passkey (step 2) to finish signing in.';
    } else {
      s.textContent = 'Not signed in.';
    }
  }

  function renderPasskeys(list) {
    const ul = $('passkeys');
    ul.replaceChildren();
    if (!list.length) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = 'This account has no passkeys yet.';
      ul.append(li);
      return;
    }
    for (const pk of list) {
      const li = document.createElement('li');
      li.dataset.id = pk.id;
      const name = document.createElement('strong');
      name.textContent = pk.name;
      const facts = [];
      if (pk.authenticator) facts.push(pk.authenticator);
      facts.push(pk.synced ? 'synced' : pk.device_bound ? 'device-bound' : 'may be synced');
      facts.push('added ' + new Date(pk.created_at).toLocaleString());
      facts.push(pk.last_used_at ? 'last used ' + new Date(pk.last_used_at).toLocaleString() : 'never used');
      if (pk.possibly_cloned) facts.push('POSSIBLY CLONED: refused');
      const detail = document.createElement('span');
      detail.className = 'hint';
      detail.textContent = ' — ' + facts.join(', ');
      li.append(name, detail);
      ul.append(li);
    }
  }

  async function loadPasskeys() {
    if (!state.access) {
      $('passkeys').replaceChildren(Object.assign(document.createElement('li'), { className: 'hint', textContent: 'Sign in to see them.' }));
      return null;
    }
    const body = await api('GET', '/v1/me/passkeys', undefined, state.access);
    renderPasskeys(body.passkeys || []);
    return body;
  }

  // run runs one step of the page: buttons off while it runs, then its
  // outcome (or its error) in the status and the result.
  function run(step, fn) {
    return async (ev) => {
      if (ev) ev.preventDefault();
      buttons.forEach((b) => (b.disabled = true));
      document.querySelector('main').setAttribute('aria-busy', 'true');
      show(step, 'busy', 'Working…');
      try {
        const r = await fn();
        show(step, 'ok', r.message, r.data);
      } catch (e) {
        show(step, 'error', e.message, e.problem || { error: e.message });
      } finally {
        buttons.forEach((b) => (b.disabled = false));
        document.querySelector('main').removeAttribute('aria-busy');
        showSession();
      }
    };
  }

  // ---- sign-ins --------------------------------------------------------

  // finishSignIn takes the answer of a sign-in: tokens, or the second
  // step it asks for (a passkey as second factor is done here at once).
  async function finishSignIn(body, how) {
    if (body && body.mfa_required) {
      const methods = body.methods || [];
      if (!methods.includes('webauthn')) {
        throw new Error('This account asks for a second factor (' + methods.join(', ') + '); this demo only does passkeys.');
      }
      const ch = await api('POST', '/v1/auth/mfa/challenge', { mfa_token: body.mfa_token, method: 'webauthn' });
      const cred = await getCredential(ch.options);
      const out = await api('POST', '/v1/auth/mfa/verify', { mfa_token: body.mfa_token, method: 'webauthn', credential: credentialJSON(cred) });
      return finishSignIn(out, how + ' and a passkey as second factor');
    }
    if (body && body.mfa_enrollment_required) {
      state.access = state.refresh = null;
      state.enroll = body.enrollment_token;
      const methods = body.methods || [];
      return {
        message: 'Password accepted, but this account must add a second factor first' +
          (methods.includes('webauthn') ? ': add a passkey (step 2) to finish signing in.' : ' (' + methods.join(', ') + '); this demo only adds passkeys.'),
        data: forDisplay(body),
      };
    }
    if (!body || !body.access_token) throw new Error('The server answered without a token.');
    state.access = body.access_token;
    state.refresh = body.refresh_token || null;
    state.enroll = null;
    if (body.user && body.user.email) state.email = body.user.email;
    const claims = claimsOf(body.access_token) || {};
    try {
      await loadPasskeys();
    } catch (e) {
      // the sign-in stands; the list says why it is missing
    }
    return { message: 'Signed in with ' + how + '. amr: ' + (claims.amr || []).join(', ') + '.', data: forDisplay(body) };
  }

  function credentialsInput() {
    const form = $('account');
    const email = $('email').value.trim();
    const password = $('password').value;
    if (!email || !password || !form.checkValidity()) {
      form.reportValidity();
      throw new Error('Enter an email address and a password.');
    }
    return { email, password };
  }

  async function register() {
    const { email, password } = credentialsInput();
    const body = await api('POST', '/v1/auth/register', { email, password, name: $('name').value.trim() });
    state.email = email;
    return {
      message: 'Account created for ' + email + '. Verify the address with the link in the email we sent, then Sign in with password.',
      data: body,
    };
  }

  async function login() {
    const { email, password } = credentialsInput();
    state.email = email;
    const body = await api('POST', '/v1/auth/login', { email, password });
    return finishSignIn(body, 'a password');
  }

  async function passkeySignIn() {
    requireWebAuthn();
    // No email: the options allow any discoverable credential, and the
    // browser offers the passkeys it holds for this site.
    const begun = await api('POST', '/v1/auth/passkey/begin', {});
    const cred = await getCredential(begun.options);
    const body = await api('POST', '/v1/auth/passkey/finish', { passkey_token: begun.passkey_token, credential: credentialJSON(cred) });
    state.email = null;
    return finishSignIn(body, 'a passkey');
  }

  async function addPasskey() {
    const token = state.access || state.enroll;
    if (!token) throw new Error('Sign in first (step 1 or 3): adding a passkey needs the account\'s token.');
    requireWebAuthn();
    const begun = await api('POST', '/v1/me/passkeys/register/begin', {}, token);
    const cred = await createCredential(begun.options);
    const body = await api('POST', '/v1/me/passkeys/register/finish', {
      registration_token: begun.registration_token,
      credential: credentialJSON(cred),
      name: $('passkey-name').value.trim(),
    }, token);
    if (body && body.access_token) {
      // A sign-in that had to add a second factor is finished now.
      const r = await finishSignIn(body, 'a password (the passkey just added is its second factor)');
      return { message: 'Passkey added. ' + r.message, data: r.data };
    }
    await loadPasskeys();
    return { message: 'Passkey "' + body.name + '" added.', data: body };
  }

  async function refreshList() {
    if (!state.access) throw new Error('Sign in first to list the account\'s passkeys.');
    const body = await loadPasskeys();
    const n = (body.passkeys || []).length;
    return { message: 'This account has ' + n + ' passkey' + (n === 1 ? '' : 's') + '.', data: body };
  }

  async function signOut() {
    const token = state.access;
    state.access = state.refresh = state.enroll = null;
    state.email = null;
    await loadPasskeys();
    if (token) {
      try {
        await api('POST', '/v1/auth/logout', undefined, token);
      } catch (e) {
        return { message: 'Forgot the tokens (the server did not end the session: ' + e.message + ').', data: {} };
      }
    }
    return { message: 'Signed out: the tokens are forgotten.', data: {} };
  }

  // ---- wiring ------------------------------------------------------------

  $('nojs').hidden = true;
  $('account').addEventListener('submit', run('login', login));
  $('register').addEventListener('click', run('register', register));
  $('add-passkey').addEventListener('click', run('add-passkey', addPasskey));
  $('passkey-signin').addEventListener('click', run('passkey-signin', passkeySignIn));
  $('refresh-passkeys').addEventListener('click', run('list', refreshList));
  $('signout').addEventListener('click', run('signout', signOut));
  if (!window.isSecureContext || !window.PublicKeyCredential) {
    show('load', 'error', window.isSecureContext
      ? 'This browser does not support passkeys (WebAuthn).'
      : 'Passkeys need a secure context: open this page over https, or on http://localhost.');
  }
  showSession();
})();
