// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Interop;
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

    /// <summary>Whether InvokeBackward may overwrite the incoming gradient array with its results.</summary>
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

/// <summary>The positional saved tensors, with an index error that says how many were saved.</summary>
internal sealed class SavedTensorList : IReadOnlyList<Tensor?>
{
    private readonly NodeState _state;
    private readonly Tensor?[] _saved;

    internal SavedTensorList(NodeState state, Tensor?[] saved)
    {
        _state = state;
        _saved = saved;
    }

    public int Count => _state.PositionalSaved;

    public Tensor? this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_state.PositionalSaved)
            {
                int n = _state.PositionalSaved;
                string saved = n == 0 ? "saved no tensor with ctx.SaveForBackward(...)" : n == 1 ? "saved 1 tensor (index 0)" : $"saved {n} tensors (indices 0 to {n - 1})";
                throw new ArgumentOutOfRangeException(
                    nameof(index), index, $"'{_state.Function.Name}': SavedTensors[{index}] does not exist: the Forward {saved}.");
            }
            return _saved[index];
        }
    }

    public IEnumerator<Tensor?> GetEnumerator()
    {
        for (int i = 0; i < _state.PositionalSaved; i++)
            yield return _saved[i];
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Saved tensors read by name: <c>ctx.Saved["x"]</c>.</summary>
public sealed class SavedTensors
{
    private readonly NodeState _state;
    private readonly Tensor?[] _saved;

    internal SavedTensors(NodeState state, Tensor?[] saved)
    {
        _state = state;
        _saved = saved;
    }

    /// <summary>The names saved by the Forward, in save order.</summary>
    public IReadOnlyList<string> Names => _state.SavedNames ?? (IReadOnlyList<string>)Array.Empty<string>();

    /// <summary>The tensor saved under <paramref name="name"/> (null if null was saved).</summary>
    /// <param name="name">The name given to SaveForBackward.</param>
    /// <exception cref="KeyNotFoundException">Nothing was saved under that name; the message lists what was.</exception>
    public Tensor? this[string name]
    {
        get
        {
            ArgumentNullException.ThrowIfNull(name);
            string[]? names = _state.SavedNames;
            if (names is not null)
            {
                for (int i = 0; i < names.Length; i++)
                {
                    if (string.Equals(names[i], name, StringComparison.Ordinal))
                        return _saved[_state.PositionalSaved + i];
                }
            }
            string known = names is null || names.Length == 0 ? "none" : "'" + string.Join("', '", names) + "'";
            throw new KeyNotFoundException(
                $"'{_state.Function.Name}': nothing was saved under the name '{name}' (saved names: {known}).");
        }
    }

    /// <summary>Whether a tensor was saved under <paramref name="name"/>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>True if saved.</returns>
    public bool Contains(string name) => _state.SavedNames is { } n && Array.IndexOf(n, name) >= 0;
}
