// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.TorchSharpInternals;

// The TorchSharp dispose scope each Forward and Backward runs in, so that the tensors it creates die when it
// returns. Behaves exactly like using var scope = torch.NewDisposeScope() (same scope chain, same
// statistics), but the scope objects are reused per thread: a fresh TorchSharp scope costs a scope object, a
// hash set with its buckets and another hash set when disposed, about 450 bytes per call for the two
// delegates of a function, and on the identity benchmark the garbage collections they caused were an eighth
// of the library's added time.
// Reuse needs TorchSharp 0.107's internal scope API (the thread's scope manager, its current scope, and the
// scope constructor, reached through UnsafeAccessorAttribute without reflection). Should a
// TorchSharp build lack any of it, every scope is a public torch.NewDisposeScope() instead.
internal struct DelegateScope
{
    private const int Unknown = 0, Pooled = 1, Public = 2;
    private static int s_mode;

    // A per-thread stack of idle scopes: a nested Forward or Backward (one function applied inside another)
    // takes the next one, so a scope is never used twice at once.
    [ThreadStatic]
    private static DisposeScope?[]? t_idle;

    [ThreadStatic]
    private static int t_idleCount;

    private readonly DisposeScope _scope;
    private readonly DisposeScopeManager? _manager;

    private DelegateScope(DisposeScope scope, DisposeScopeManager? manager)
    {
        _scope = scope;
        _manager = manager;
    }

    // Whether scopes are being reused (TorchSharp's internals were found); false before the first scope.
    internal static bool IsPooling => s_mode == Pooled;

    // Switches between reused scopes (true: probe TorchSharp's internals again at the next scope) and public
    // torch.NewDisposeScope() scopes (false). For tests of the fallback; a scope already entered keeps
    // its own kind until it exits, so switching is safe at any time.
    internal static void SetPooling(bool enabled) => s_mode = enabled ? Unknown : Public;

    // The underlying TorchSharp scope (current until Exit).
    internal readonly DisposeScope Scope => _scope;

    // Opens a scope and makes it the thread's current one.
    internal static DelegateScope Enter() => s_mode == Pooled ? EnterPooled() : EnterSlow();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static DelegateScope EnterSlow()
    {
        if (s_mode == Unknown)
            s_mode = InternalsPresent() ? Pooled : Public;
        return s_mode == Pooled ? EnterPooled() : new DelegateScope(torch.NewDisposeScope(), null);
    }

    // Calls every internal member once in a way that changes no state; false when one is missing.
    private static bool InternalsPresent()
    {
        try
        {
            DisposeScopeManager manager = ThreadManager(null);
            DisposeScope? current = GetCurrent(manager);
            DisposeScope probe = NewScope(manager);   // not linked: the constructor only reads the current scope
            SetOuter(probe, null);
            _ = GetOuter(probe);
            RemoveScope(manager, probe);               // not in the chain: nothing to unlink
            try
            {
                AddToOther(null, probe, NotATensor.Instance);
            }
            catch (InvalidOperationException)
            {
                // Expected: TorchSharp tracks tensors and packed sequences only.
            }
            SetCurrent(manager, current);
            DisposeScope?[] idle = t_idle ??= new DisposeScope?[8];
            if (t_idleCount < idle.Length)
                idle[t_idleCount++] = probe;
            return true;
        }
        catch (MissingMemberException)
        {
            return false;
        }
    }

    private sealed class NotATensor : IDisposable
    {
        internal static readonly NotATensor Instance = new();

        public void Dispose()
        {
        }
    }

    private static DelegateScope EnterPooled()
    {
        DisposeScopeManager manager = ThreadManager(null);
        DisposeScope? outer = GetCurrent(manager);
        DisposeScope scope = t_idleCount > 0 ? t_idle![--t_idleCount]! : NewScope(manager);
        SetOuter(scope, outer);
        SetCurrent(manager, scope);
        return new DelegateScope(scope, manager);
    }

    // Moves tensor to the enclosing scope if this scope holds it, as
    // DisposeScope.MoveToOuter does (without its per-call arrays).
    internal readonly void MoveToOuter(Tensor tensor)
    {
        // The outer scope as it is now: TorchSharp relinks it if the delegate disposed the caller's scope.
        if (_manager is not null && GetOuter(_scope) is { } outer)
        {
            if (_scope.Contains(tensor))
                AddToOther(null, outer, tensor);
        }
        else
        {
            _scope.MoveToOuter(tensor);
        }
    }

    // Takes a tensor this scope holds out of TorchSharp's hands and returns its handle, for the shim to release
    // natively (the tensor reads as disposed afterwards). TorchSharp counts a tensor live from its creation until its
    // Dispose, which never runs for such a tensor, so it is counted as disposed here: otherwise
    // DisposeScopeManager.Statistics.ThreadTotalLiveCount, TorchSharp's own leak probe, would grow by one for every
    // gradient a Backward returns.
    internal readonly IntPtr HandOver(Tensor tensor)
    {
        _scope.Detach(tensor);
        if (!s_disposalsUncountable)
            CountAsDisposed(_manager, tensor);
        return tensor.DecoupleFromNativeHandle();
    }

    // Set when TorchSharp lacks DisposingOnCurrentScope: the statistics then drift, nothing else changes.
    private static bool s_disposalsUncountable;

    private static void CountAsDisposed(DisposeScopeManager? manager, Tensor tensor)
    {
        try
        {
            // Detached, so counted as disposed outside a scope. The thread's manager, whatever kind of scope this is.
            DisposingOnCurrentScope(manager ?? ThreadManager(null), tensor);
        }
        catch (MissingMemberException)
        {
            s_disposalsUncountable = true;
        }
    }

    // Disposes what the scope still holds and restores the thread's previous current scope (TorchSharp's own
    // unlinking, so a scope the delegate left open is handled as DisposeScope.Dispose handles it).
    internal readonly void Exit()
    {
        if (_manager is null)
        {
            _scope.Dispose();
            return;
        }
        try
        {
            if (_scope.DisposablesCount != 0)
                _scope.DisposeEverything();
        }
        finally
        {
            RemoveScope(_manager, _scope);
            SetOuter(_scope, null);
            DisposeScope?[] idle = t_idle ??= new DisposeScope?[8];
            if (t_idleCount < idle.Length)
                idle[t_idleCount++] = _scope;
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.StaticMethod, Name = "get_ThreadSingleton")]
    private static extern DisposeScopeManager ThreadManager(DisposeScopeManager? declaringType);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_CurrentDisposeScope")]
    private static extern DisposeScope? GetCurrent(DisposeScopeManager manager);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "set_CurrentDisposeScope")]
    private static extern void SetCurrent(DisposeScopeManager manager, DisposeScope? scope);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "RemoveDisposeScope")]
    private static extern void RemoveScope(DisposeScopeManager manager, DisposeScope scope);

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern DisposeScope NewScope(DisposeScopeManager manager);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "get_OuterScope")]
    private static extern DisposeScope? GetOuter(DisposeScope scope);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "set_OuterScope")]
    private static extern void SetOuter(DisposeScope scope, DisposeScope? outer);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "DisposingOnCurrentScope")]
    private static extern void DisposingOnCurrentScope(DisposeScopeManager manager, Tensor item);

    [UnsafeAccessor(UnsafeAccessorKind.StaticMethod, Name = "AddToOther")]
    private static extern bool AddToOther(DisposeScope? declaringType, DisposeScope scope, IDisposable disposable);
}
