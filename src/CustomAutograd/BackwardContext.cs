// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// The context a Backward receives: the tensors saved by the Forward, which inputs need a gradient,
/// and user state. Equivalent to the <c>ctx</c> argument of PyTorch's <c>Function.backward</c>. It is
/// valid only while the Backward runs; using it later throws <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class BackwardContext
{
    private readonly NodeState _state;
    private readonly Tensor?[] _saved;
    private SavedTensorList? _savedList;
    private bool _valid = true;

    internal BackwardContext(NodeState state, Tensor?[] saved)
    {
        _state = state;
        _saved = saved;
    }

    /// <summary>The name of the function whose Backward runs.</summary>
    public string FunctionName => _state.Function.Name;

    /// <summary>
    /// The tensors given to <see cref="ForwardContext.SaveForBackward(Tensor?[])"/>, in order (null where
    /// null was saved). Equivalent to <c>ctx.saved_tensors</c>. Reading them after a backward without
    /// <c>retain_graph</c> has freed them fails in libtorch's "backward through the graph a second time" error.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An index past the end; the message says how many were saved.</exception>
    public IReadOnlyList<Tensor?> SavedTensors
    {
        get
        {
            ThrowIfInvalid();
            return _savedList ??= new SavedTensorList(_state, _saved);
        }
    }

    /// <summary>The tensors saved by name with <see cref="ForwardContext.SaveForBackward(string, Tensor?)"/>.</summary>
    public SavedTensors Saved
    {
        get
        {
            ThrowIfInvalid();
            return new SavedTensors(_state, _saved);
        }
    }

    /// <summary>
    /// For each argument of <c>Apply</c>, whether it required grad when the Forward ran. This is forward-time
    /// information, as PyTorch's <c>ctx.needs_input_grad</c>: libtorch's per-backward pruning of unused
    /// inputs is not reachable through LibTorchSharp's exported API.
    /// </summary>
    public IReadOnlyList<bool> NeedsInputGrad
    {
        get
        {
            ThrowIfInvalid();
            return _state.NeedsInputGrad;
        }
    }

    /// <summary>Returns the state stored with <see cref="ForwardContext.SetState{T}"/>.</summary>
    /// <typeparam name="T">The type it was stored as (or a base type).</typeparam>
    /// <returns>The state.</returns>
    /// <exception cref="InvalidOperationException">No state of that type was stored.</exception>
    public T GetState<T>()
    {
        ThrowIfInvalid();
        if (_state.UserState is T value)
            return value;
        throw new InvalidOperationException(_state.UserState is null
            ? $"'{FunctionName}': the Forward stored no state (call ctx.SetState in the Forward)."
            : $"'{FunctionName}': the state is a {_state.UserState.GetType().Name}, not a {typeof(T).Name}.");
    }

    internal NodeState Node => _state;

    // Whether InvokeBackward may overwrite the incoming gradient array with its results.
    internal bool MayReuseGradients { get; init; }

    internal void Invalidate() => _valid = false;

    internal void ThrowIfInvalid()
    {
        if (!_valid)
        {
            throw new ObjectDisposedException(nameof(BackwardContext),
                $"The backward context of '{_state.Function.Name}' is only valid while its Backward runs.");
        }
    }
}
