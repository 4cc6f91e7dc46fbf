// Package authz is the authorization decision engine of role-based access
// control: whether a subject, through the roles granted to it, holds a
// permission on a resource. It is pure: no storage, no HTTP, no clock (the
// instant of a decision is the request's time), and its only state is the
// cache of compiled conditions inside a Compiler.
//
// # Model
//
// A permission is a "resource:action" string such as "invoices:read"
// (lowercase letters, digits, '_', '-' and '.'). Rules hold permission
// patterns: a permission, "resource:*" (every action of the resource) or
// "*" (everything); see ValidPermission and Matches.
//
// A Role has allow rules, deny rules and parent roles whose rules it
// inherits. The hierarchy must stay acyclic (CheckCycle, at write time)
// and at most MaxDepth roles deep; Effective lists a role's rules with
// those it inherits, each with the chain of roles it comes through. A role
// may belong to an organisation; it then counts only for that
// organisation's resources.
//
// A Grant gives a role to a subject, globally or within one organisation,
// optionally between ValidFrom and ValidUntil and under a condition.
//
// # Conditions
//
// Grants and rules may carry a condition: a CEL expression of type bool
// over request (ip, time, mfa, country), user (id, email_verified,
// organizations, metadata) and resource (type, id, organization_id,
// owner_id, attributes), for example
//
//	request.mfa && cidr('10.0.0.0/8').containsIP(request.ip)
//	resource.owner_id == user.id
//	resource.organization_id in user.organizations
//
// A Compiler parses and type-checks a condition when it is written (a
// refusal is a *ConditionError carrying the compiler's message) and caches
// its program by expression text. Evaluation runs under a cost limit;
// whatever goes wrong in it (the limit, a missing map key, a type error at
// run time) counts against the subject: see Engine.Decide.
//
// # Decision rule
//
// Build one Compiler (NewCompiler) and one Engine over it (NewEngine) and
// share them. Engine.Decide considers the subject's grants that apply (valid at the
// request time, global or of the resource's organisation, condition true)
// and, for each, its role with the role's ancestors. An explicit deny
// matching the permission, from any applicable role, overrides every
// allow. Otherwise the permission is allowed if an applicable grant's role
// or one of its ancestors has a matching allow rule whose condition holds.
// Nothing applying means denied. The Decision says why, with a stable
// Reason code, the rules that matched and the deny that won, and, when
// asked, a step-by-step explanation of every grant and role considered.
package authz
