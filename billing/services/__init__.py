"""Every write, by area: each module holds its area's change kinds and messages (declared once,
registered when the billing app is ready) and the functions the portal calls.  A function checks
policy, then records a change through billing.changes, which applies it through the gateway."""
