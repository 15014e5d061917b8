// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;
using CustomAutograd.Graph;
using CustomAutograd.Native;

namespace CustomAutograd.TorchSharpInternals;

/// <summary>
/// The TorchSharp dispose scope each Forward and Backward runs in, so that the tensors it creates die when it
/// returns. Behaves exactly like <c>using var scope = torch.NewDisposeScope()</c> (same scope chain, same
/// statistics), but the scope objects are reused per thread: a fresh TorchSharp scope costs a scope object, a
/// hash set with its buckets and another hash set when disposed, about 450 bytes per call for the two
/// delegates of a function, and on the identity benchmark the garbage collections they caused were an eighth
/// of the library's added time.
/// </summary>
/// <remarks>
/// Reuse needs TorchSharp 0.107's internal scope API (the thread's scope manager, its current scope, and the
/// scope constructor, reached through <see cref="UnsafeAccessorAttribute"/> without reflection). Should a
/// TorchSharp build lack any of it, every scope is a public <c>torch.NewDisposeScope()</c> instead.
/// </remarks>
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

    /// <summary>Whether scopes are being reused (TorchSharp's internals were found); false before the first scope.</summary>
    internal static bool IsPooling => s_mode == Pooled;

    /// <summary>
    /// Switches between reused scopes (true: probe TorchSharp's internals again at the next scope) and public
    /// <c>torch.NewDisposeScope()</c> scopes (false). For tests of the fallback; a scope already entered keeps
    /// its own kind until it exits, so switching is safe at any time.
    /// </summary>
    internal static void SetPooling(bool enabled) => s_mode = enabled ? Unknown : Public;

    /// <summary>The underlying TorchSharp scope (current until <see cref="Exit"/>).</summary>
    internal readonly DisposeScope Scope => _scope;

    /// <summary>Opens a scope and makes it the thread's current one.</summary>
    internal static DelegateScope Enter() => s_mode == Pooled ? EnterPooled() : EnterSlow();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static DelegateScope EnterSlow()
    {
        if (s_mode == Unknown)
            s_mode = InternalsPresent() ? Pooled : Public;
        return s_mode == Pooled ? EnterPooled() : new DelegateScope(torch.NewDisposeScope(), null);
    }

    /// <summary>Calls every internal member once in a way that changes no state; false when one is missing.</summary>
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

    /// <summary>
    /// Moves <paramref name="tensor"/> to the enclosing scope if this scope holds it, as
    /// <c>DisposeScope.MoveToOuter</c> does (without its per-call arrays).
    /// </summary>
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

    /// <summary>
    /// Disposes what the scope still holds and restores the thread's previous current scope (TorchSharp's own
    /// unlinking, so a scope the delegate left open is handled as <c>DisposeScope.Dispose</c> handles it).
    /// </summary>
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

    [UnsafeAccessor(UnsafeAccessorKind.StaticMethod, Name = "AddToOther")]
    private static extern bool AddToOther(DisposeScope? declaringType, DisposeScope scope, IDisposable disposable);
}
