// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Graph;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// The context a Forward receives: what to save for the Backward, which outputs are special, and user
/// state. Equivalent to the <c>ctx</c> argument of PyTorch's <c>Function.forward</c>. It is valid only
/// while the Forward runs; using it later throws <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class ForwardContext
{
    private readonly AutogradFunction _function;
    private readonly InputFlags _needsInputGrad;
    private List<Tensor?>? _saved;
    private Extras? _extras;   // what most Forwards never use, allocated on first use
    private object? _state;
    private bool _valid = true;

    internal ForwardContext(AutogradFunction function, InputFlags needsInputGrad)
    {
        _function = function;
        _needsInputGrad = needsInputGrad;
        MaterializeGrads = function.Options.MaterializeGrads;
    }

    /// <summary>The name of the function being applied.</summary>
    public string FunctionName => _function.Name;

    /// <summary>
    /// For each argument of <c>Apply</c>, whether that input required grad when the forward ran (false for
    /// null inputs). Equivalent to PyTorch's <c>ctx.needs_input_grad</c>, which is also forward-time
    /// information: libtorch's per-backward pruning of unused inputs is not reachable through LibTorchSharp.
    /// </summary>
    public IReadOnlyList<bool> NeedsInputGrad
    {
        get
        {
            ThrowIfInvalid();
            return _needsInputGrad;
        }
    }

    /// <summary>
    /// Saves tensors for the Backward, where <see cref="BackwardContext.SavedTensors"/> returns them in the
    /// same order. A later call replaces the earlier positional list. Inputs and outputs are saved as libtorch
    /// saved variables, so an in-place change before the backward is detected. <c>null</c> may be saved.
    /// Equivalent to <c>ctx.save_for_backward(*tensors)</c>.
    /// </summary>
    /// <param name="tensors">The tensors to save (nulls allowed).</param>
    public void SaveForBackward(params Tensor?[] tensors)
    {
        ThrowIfInvalid();
        ArgumentNullException.ThrowIfNull(tensors);
        foreach (Tensor? t in tensors)
            ThrowIfDisposed(t, "a tensor passed to SaveForBackward");
        _saved ??= new List<Tensor?>(tensors.Length);
        _saved.Clear();
        _saved.AddRange(tensors);
    }

    /// <summary>
    /// Saves one tensor under a name, read back with <see cref="BackwardContext.Saved"/>. Saving the same name
    /// twice replaces the tensor. Equivalent to R torch's <c>ctx$save_for_backward(name = tensor)</c>.
    /// </summary>
    /// <param name="name">The name to read it back by.</param>
    /// <param name="tensor">The tensor (null allowed).</param>
    public void SaveForBackward(string name, Tensor? tensor)
    {
        ThrowIfInvalid();
        ArgumentException.ThrowIfNullOrEmpty(name);
        ThrowIfDisposed(tensor, $"the tensor saved as '{name}'");
        Extras extras = _extras ??= new Extras();
        extras.SavedNames ??= new List<string>();
        extras.NamedSaved ??= new List<Tensor?>();
        int existing = extras.SavedNames.IndexOf(name);
        if (existing >= 0)
        {
            extras.NamedSaved[existing] = tensor;
        }
        else
        {
            extras.SavedNames.Add(name);
            extras.NamedSaved.Add(tensor);
        }
    }

    /// <summary>
    /// Declares that the Forward modified these inputs in place (they must also be returned as outputs).
    /// Their version counters are bumped and they are connected to this function's node. Equivalent to
    /// <c>ctx.mark_dirty(*tensors)</c>. libtorch refuses this for a leaf that requires grad.
    /// </summary>
    /// <param name="tensors">Inputs modified in place.</param>
    public void MarkDirty(params Tensor[] tensors)
    {
        ThrowIfInvalid();
        ArgumentNullException.ThrowIfNull(tensors);
        List<Tensor> dirty = (_extras ??= new Extras()).Dirty ??= new List<Tensor>();
        foreach (Tensor t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            ThrowIfDisposed(t, "a tensor passed to MarkDirty");
            dirty.Add(t);
        }
    }

    /// <summary>
    /// Declares outputs that are not differentiable: they will not require grad and their gradient in the
    /// Backward is always zero (or null when grads are not materialised). Equivalent to
    /// <c>ctx.mark_non_differentiable(*tensors)</c>.
    /// </summary>
    /// <param name="tensors">Outputs of this Forward.</param>
    public void MarkNonDifferentiable(params Tensor[] tensors)
    {
        ThrowIfInvalid();
        ArgumentNullException.ThrowIfNull(tensors);
        List<Tensor> nonDiff = (_extras ??= new Extras()).NonDifferentiable ??= new List<Tensor>();
        foreach (Tensor t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            ThrowIfDisposed(t, "a tensor passed to MarkNonDifferentiable");
            nonDiff.Add(t);
        }
    }

    /// <summary>
    /// Whether a missing output gradient reaches the Backward as zeros (true, the default) or as null.
    /// Equivalent to <c>ctx.set_materialize_grads(value)</c>.
    /// </summary>
    /// <param name="value">False to receive null for missing gradients.</param>
    public void SetMaterializeGrads(bool value)
    {
        ThrowIfInvalid();
        MaterializeGrads = value;
    }

    /// <summary>
    /// Stores any non-tensor object for the Backward (<see cref="BackwardContext.GetState{T}"/>), the counterpart
    /// of attributes set on PyTorch's <c>ctx</c>. Tensors are refused: save them with
    /// <see cref="SaveForBackward(Tensor?[])"/>, which lets libtorch detect in-place changes and free them after
    /// use, and cannot form a reference cycle through the graph (an output kept in the state would keep its own
    /// graph alive forever).
    /// </summary>
    /// <typeparam name="T">The state's type.</typeparam>
    /// <param name="state">The state.</param>
    /// <exception cref="ArgumentException">The state is a tensor, or a tuple or collection holding one.</exception>
    public void SetState<T>(T state)
    {
        ThrowIfInvalid();
        if (TensorSearch.Contains(state))
        {
            throw new ArgumentException(
                $"'{_function.Name}': SetState was given a tensor (or a tuple or collection holding one). Save tensors with " +
                "ctx.SaveForBackward(...) and read them back with ctx.SavedTensors or ctx.Saved[name]: a tensor kept in the " +
                "state is never freed by libtorch after use, and an output kept there keeps its whole graph alive forever.",
                nameof(state));
        }
        _state = state;
    }

    internal bool MaterializeGrads { get; private set; }

    internal object? State => _state;

    internal int PositionalSavedCount => _saved?.Count ?? 0;

    internal int SavedCount => PositionalSavedCount + (_extras?.NamedSaved?.Count ?? 0);

    internal Tensor? SavedAt(int index) =>
        index < PositionalSavedCount ? _saved![index] : _extras!.NamedSaved![index - PositionalSavedCount];

    internal string[]? SavedNames => _extras?.SavedNames?.ToArray();

    internal string SavedNameAt(int index) => _extras!.SavedNames![index - PositionalSavedCount];

    internal List<Tensor>? Dirty => _extras?.Dirty;

    internal List<Tensor>? NonDifferentiable => _extras?.NonDifferentiable;

    internal void Invalidate() => _valid = false;

    private void ThrowIfInvalid()
    {
        if (!_valid)
        {
            throw new ObjectDisposedException(nameof(ForwardContext),
                $"The forward context of '{_function.Name}' is only valid while its Forward runs.");
        }
    }

    private sealed class Extras
    {
        internal List<string>? SavedNames;
        internal List<Tensor?>? NamedSaved;
        internal List<Tensor>? Dirty;
        internal List<Tensor>? NonDifferentiable;
    }

    private static void ThrowIfDisposed(Tensor? tensor, string what)
    {
        if (tensor is not null && tensor.IsInvalid)
            throw new ObjectDisposedException(nameof(Tensor), $"{what} has been disposed.");
    }
}
