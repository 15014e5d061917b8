// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CustomAutograd.Interop;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// A differentiable operation defined by a Forward and a Backward delegate, joined to libtorch's own
/// autograd graph. The C# counterpart of PyTorch's <c>torch.autograd.Function</c>. Create one with
/// <see cref="Create(string, Func{ForwardContext, Tensor, Tensor}, Func{BackwardContext, Tensor, Tensor?}, AutogradFunctionOptions?)"/>
/// (one input, one output), the two-input overload, or <see cref="CreateMulti"/> (any number), and call
/// its <c>Apply</c> method. Function objects are immutable and thread-safe; create them once and reuse them.
/// </summary>
public abstract class AutogradFunction
{
    private readonly IntPtr _nativeName;

    private protected AutogradFunction(string name, AutogradFunctionOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Options = options ?? AutogradFunctionOptions.Default;
        _nativeName = NativeRuntime.Intern(name);
        Diagnostics.Log.FunctionCreated(name, Options);
    }

    /// <summary>The name used in every error message about this function.</summary>
    public string Name { get; }

    /// <summary>The options the function was created with.</summary>
    public AutogradFunctionOptions Options { get; }

    /// <summary>
    /// Creates a function of one tensor with one tensor result.
    /// </summary>
    /// <param name="name">A name for error messages, e.g. "MyReLU".</param>
    /// <param name="forward">Computes the output; runs with grad mode off. Tensors it creates, other than its
    /// result and what it saves, are disposed when it returns.</param>
    /// <param name="backward">Given the gradient of the output, returns the gradient of the input (or null
    /// for none). The gradient is never null unless gradients are not materialised
    /// (<see cref="AutogradFunctionOptions.MaterializeGrads"/> false or <see cref="ForwardContext.SetMaterializeGrads"/>),
    /// in which case it is null when the output was not used: check for it.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="UnaryFunction.Apply"/>.</returns>
    public static UnaryFunction Create(string name, Func<ForwardContext, Tensor, Tensor> forward,
                                       Func<BackwardContext, Tensor, Tensor?> backward,
                                       AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>Creates a function of two tensors with one tensor result.</summary>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output from both inputs; runs with grad mode off.</param>
    /// <param name="backward">Given the output's gradient, returns both inputs' gradients (null for none).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="BinaryFunction.Apply"/>.</returns>
    public static BinaryFunction Create(string name, Func<ForwardContext, Tensor, Tensor, Tensor> forward,
                                        Func<BackwardContext, Tensor, (Tensor? GradA, Tensor? GradB)> backward,
                                        AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of any number of tensors with any number of tensor results.
    /// </summary>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the outputs; runs with grad mode off. Inputs passed as null (optional
    /// inputs) arrive as null.</param>
    /// <param name="backward">Receives one gradient per output and returns one gradient per input (null
    /// meaning no gradient; extra trailing nulls are ignored).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="MultiFunction.Apply"/>.</returns>
    public static MultiFunction CreateMulti(string name, Func<ForwardContext, Tensor[], Tensor[]> forward,
                                            Func<BackwardContext, Tensor?[], Tensor?[]> backward,
                                            AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of one tensor and typed non-tensor arguments (which get no gradient), e.g. a scale
    /// factor: <c>CreateWithArgs&lt;double&gt;("Scale", (ctx, x, s) =&gt; x * s, (ctx, g, s) =&gt; g * s)</c>.
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the output from the input and the arguments; runs with grad mode off.</param>
    /// <param name="backward">Given the output's gradient and the same arguments, returns the input's gradient.</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="UnaryFunction{TArgs}.Apply"/>.</returns>
    public static UnaryFunction<TArgs> CreateWithArgs<TArgs>(string name, Func<ForwardContext, Tensor, TArgs, Tensor> forward,
                                                             Func<BackwardContext, Tensor, TArgs, Tensor?> backward,
                                                             AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Creates a function of any number of tensors and typed non-tensor arguments (which get no gradient).
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type; a tuple or record for several.</typeparam>
    /// <param name="name">A name for error messages.</param>
    /// <param name="forward">Computes the outputs; runs with grad mode off.</param>
    /// <param name="backward">One gradient per output in, one per tensor input out (null for none).</param>
    /// <param name="options">Options; <see cref="AutogradFunctionOptions.Default"/> when null.</param>
    /// <returns>The function; call <see cref="MultiFunction{TArgs}.Apply"/>.</returns>
    public static MultiFunction<TArgs> CreateMultiWithArgs<TArgs>(string name, Func<ForwardContext, Tensor[], TArgs, Tensor[]> forward,
                                                                  Func<BackwardContext, Tensor?[], TArgs, Tensor?[]> backward,
                                                                  AutogradFunctionOptions? options = null)
        => new(name, forward, backward, options);

    /// <summary>
    /// Finds the .NET exception that a Backward threw, given the exception that <c>backward()</c> or
    /// <c>torch.autograd.grad</c> raised for it (TorchSharp raises its own exception type with our message).
    /// The most recent failures are remembered per process.
    /// </summary>
    /// <param name="exception">The exception caught around <c>backward()</c>.</param>
    /// <param name="original">The exception the Backward threw.</param>
    /// <returns>True when it was found.</returns>
    public static bool TryGetBackwardException(Exception exception, out Exception? original)
        => BackwardFailures.TryGet(exception, out original);

    /// <summary>Runs the user's Backward: one gradient per output in, one per Apply argument out.</summary>
    internal abstract Tensor?[] InvokeBackward(BackwardContext ctx, Tensor?[] grads);

    private MultiFunction? _delayedError;

    [ThreadStatic]
    private static Tensor[]? t_guardOutputs;

    /// <summary>
    /// For <see cref="AutogradFunctionOptions.OnceDifferentiable"/>: connects the gradients a Backward computed
    /// under no-grad to a node whose own backward fails, as PyTorch's <c>DelayedError</c> does, so that
    /// differentiating them raises an error naming this function instead of silently giving zeros. The node gets
    /// detached copies (sharing storage), so a tensor the Backward does not own is never modified, and the node's
    /// state keeps no tensor.
    /// </summary>
    internal Tensor?[] GuardOnceDifferentiable(Tensor?[] incoming, Tensor?[] computed)
    {
        int count = 0;
        foreach (Tensor? g in computed)
        {
            if (g is not null)
                count++;
        }
        if (count == 0 || Array.TrueForAll(incoming, g => g is null || !g.requires_grad))
            return computed;

        _delayedError ??= CreateMulti(
            Name + " (once differentiable)",
            static (ctx, grads) =>
            {
                // Handed over by the caller on this thread just before Apply (the Forward runs synchronously).
                Tensor[] outputs = t_guardOutputs!;
                t_guardOutputs = null;
                return outputs;
            },
            (ctx, grads) => throw new InvalidOperationException(
                $"trying to differentiate twice a function that was marked once-differentiable ('{Name}')"));
        var detached = new Tensor[count];
        for (int i = 0, k = 0; i < computed.Length; i++)
        {
            if (computed[i] is { } g)
                detached[k++] = g.detach();
        }
        t_guardOutputs = detached;
        Tensor[] wrapped = _delayedError.Apply(Array.FindAll(incoming, g => g is not null)!);
        var result = new Tensor?[computed.Length];
        for (int i = 0, k = 0; i < computed.Length; i++)
        {
            if (computed[i] is not null)
                result[i] = wrapped[k++];
        }
        return result;
    }

    /// <summary>Whether Apply accepts null tensors (optional inputs).</summary>
    internal virtual bool AllowsNullInputs => false;

    /// <summary>
    /// One application: validate, run the Forward under no-grad in its own dispose scope, then one native
    /// call that creates the node, connects it, wraps the outputs and takes the saved tensors.
    /// </summary>
    [SkipLocalsInit]
    internal unsafe Tensor[] ApplyCore<TForward>(Tensor?[] inputs, TForward forward)
        where TForward : struct, IForwardInvoker
    {
        int n = inputs.Length;
        int nonNull = 0;
        for (int i = 0; i < n; i++)
        {
            Tensor? t = inputs[i];
            if (t is null)
            {
                if (!AllowsNullInputs)
                    throw new ArgumentNullException(nameof(inputs), $"'{Name}': input {i} is null.");
                continue;
            }
            if (t.IsInvalid)
                throw new ObjectDisposedException(nameof(Tensor), $"'{Name}': input {i} has been disposed.");
            nonNull++;
        }

        NativeRuntime.EnsureInitialized();
        bool gradEnabled = NativeRuntime.IsGradEnabled();
        ulong bits = 0;
        bool[]? manyFlags = n > 64 ? new bool[n] : null;
        for (int i = 0; i < n; i++)
        {
            if (inputs[i] is { } t && TensorQueries.RequiresGradOf(t.Handle))
            {
                if (manyFlags is null)
                    bits |= 1UL << i;
                else
                    manyFlags[i] = true;
            }
        }
        InputFlags needs = manyFlags is null ? InputFlags.FromBits(n, bits) : InputFlags.FromArray(manyFlags);
        // As in PyTorch: a node exists only when grad mode is on and some input requires grad, while
        // NeedsInputGrad reports requires_grad itself.
        bool executable = gradEnabled && (bits != 0 || (manyFlags is not null && Array.IndexOf(manyFlags, true) >= 0));

        var ctx = new ForwardContext(this, needs);
        Tensor[] raw;
        int outputCount;
        Tensor[] results;
        const int StackOutputs = 8;
        IntPtr* stackWrapped = stackalloc IntPtr[StackOutputs];
        IntPtr[]? heapWrapped = null;
        IntPtr* wrapped = stackWrapped;
        DelegateScope scope = DelegateScope.Enter();
        try
        {
            NativeRuntime.SetGradEnabled(false);
            try
            {
                raw = forward.Invoke(ctx, inputs);
            }
            finally
            {
                NativeRuntime.SetGradEnabled(gradEnabled);
                ctx.Invalidate();
            }

            outputCount = ValidateOutputs(raw);
            ValidateAfterForward(ctx, inputs);
            ValidateMarks(ctx, inputs, raw);
            forward.CheckArgs(this, raw);
            if (outputCount > StackOutputs)
            {
                heapWrapped = GC.AllocateArray<IntPtr>(outputCount, pinned: true);
                wrapped = (IntPtr*)Unsafe.AsPointer(ref heapWrapped[0]);
            }
            ConnectAndWrap(forward, ctx, inputs, nonNull, needs, executable, raw, wrapped);

            // The array the Forward returned is reused for the results when it is ours (one- and two-input forms).
            results = forward.OwnsOutputArray ? raw : new Tensor[outputCount];
            // Outputs connected in place (Note [same tensor] in node.cpp) keep their Tensor object, moved to the
            // caller's dispose scope; the others get a new object below, once this scope is gone.
            for (int i = 0; i < outputCount; i++)
            {
                if (wrapped[i] != IntPtr.Zero)
                    continue;
                results[i] = raw[i];
                scope.MoveToOuter(raw[i]);   // does nothing for a tensor this scope does not hold (e.g. an input)
            }
        }
        finally
        {
            scope.Exit();
        }

        for (int i = 0; i < outputCount; i++)
        {
            if (wrapped[i] != IntPtr.Zero)
                results[i] = Tensor.UnsafeCreateTensor(wrapped[i]);
        }
        GC.KeepAlive(heapWrapped);
        return results;
    }

    private int ValidateOutputs(Tensor[]? raw)
    {
        if (raw is null || raw.Length == 0)
            throw new CustomAutogradException(Name, "the Forward returned no tensor.", null);
        for (int i = 0; i < raw.Length; i++)
        {
            if (raw[i] is null)
                throw new CustomAutogradException(Name, $"the Forward returned null as output {i}.", null);
            if (raw[i].IsInvalid)
                throw new CustomAutogradException(Name, $"the Forward returned a disposed tensor as output {i}.", null);
        }
        return raw.Length;
    }

    /// <summary>
    /// Every tensor the native call will read must still be alive: a Forward may have disposed an input, a tensor it
    /// saved, or one it marked (TorchSharp's own error would only say "Tensor invalid -- empty handle").
    /// </summary>
    private void ValidateAfterForward(ForwardContext ctx, Tensor?[] inputs)
    {
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { IsInvalid: true })
                throw new CustomAutogradException(Name, $"input {i} was disposed inside the Forward; an input must stay alive until Apply returns.", null);
        }
        int saved = ctx.SavedCount;
        for (int i = 0; i < saved; i++)
        {
            if (ctx.SavedAt(i) is { IsInvalid: true })
            {
                string which = i < ctx.PositionalSavedCount ? $"the tensor saved at position {i}" : $"the tensor saved as '{ctx.SavedNameAt(i)}'";
                throw new CustomAutogradException(
                    Name, $"{which} was disposed before backward (inside the Forward); do not dispose a tensor you save, the library keeps it as long as the graph needs it.", null);
            }
        }
        ThrowIfAnyDisposed(ctx.Dirty, "MarkDirty");
        ThrowIfAnyDisposed(ctx.NonDifferentiable, "MarkNonDifferentiable");
    }

    private void ThrowIfAnyDisposed(System.Collections.Generic.List<Tensor>? tensors, string method)
    {
        if (tensors is null)
            return;
        for (int i = 0; i < tensors.Count; i++)
        {
            if (tensors[i].IsInvalid)
                throw new CustomAutogradException(Name, $"tensor {i} passed to {method} was disposed inside the Forward.", null);
        }
    }

    private void ValidateMarks(ForwardContext ctx, Tensor?[] inputs, Tensor[] raw)
    {
        // By identity: TorchSharp's Tensor.Equals compares values.
        if (ctx.Dirty is { } dirty)
        {
            for (int d = 0; d < dirty.Count; d++)
            {
                if (IndexOfReference(inputs, dirty[d]) < 0)
                    throw new CustomAutogradException(Name, $"MarkDirty accepts only input tensors; dirty tensor {d} is not an input of this call.", null);
                if (IndexOfReference(raw, dirty[d]) < 0)
                    throw new CustomAutogradException(Name, $"dirty tensor {d} (an input modified in place) must also be returned as an output.", null);
            }
        }
        if (ctx.NonDifferentiable is { } nonDiff)
        {
            for (int d = 0; d < nonDiff.Count; d++)
            {
                if (IndexOfReference(raw, nonDiff[d]) < 0)
                    throw new CustomAutogradException(Name, $"MarkNonDifferentiable accepts only outputs; tensor {d} is not returned by the Forward.", null);
            }
        }
    }

    /// <summary>Position of <paramref name="tensor"/> in <paramref name="tensors"/> by reference, or -1.</summary>
    internal static int IndexOfReference(Tensor?[] tensors, Tensor tensor)
    {
        for (int i = 0; i < tensors.Length; i++)
        {
            if (ReferenceEquals(tensors[i], tensor))
                return i;
        }
        return -1;
    }

    [SkipLocalsInit]   // the handle lists are written before the shim reads them, entry by entry
    private unsafe void ConnectAndWrap<TForward>(TForward forward, ForwardContext ctx, Tensor?[] inputs, int nonNull, InputFlags needs, bool executable,
                                       Tensor[] raw, IntPtr* wrapped)
        where TForward : struct, IForwardInvoker
    {
        // Handle lists live on the stack unless a call has very many tensors (a deep stack must not overflow).
        const int StackLimit = 16;
        int nOut = raw.Length;
        int nDirty = ctx.Dirty?.Count ?? 0;
        int nNonDiff = ctx.NonDifferentiable?.Count ?? 0;
        int nSave = executable ? ctx.SavedCount : 0;
        Span<IntPtr> inputSpan = nonNull <= StackLimit ? stackalloc IntPtr[StackLimit] : new IntPtr[nonNull];
        Span<IntPtr> outputSpan = nOut <= StackLimit ? stackalloc IntPtr[StackLimit] : new IntPtr[nOut];
        Span<IntPtr> dirtySpan = nDirty <= StackLimit ? stackalloc IntPtr[StackLimit] : new IntPtr[nDirty];
        Span<IntPtr> nonDiffSpan = nNonDiff <= StackLimit ? stackalloc IntPtr[StackLimit] : new IntPtr[nNonDiff];
        Span<IntPtr> saveSpan = nSave <= StackLimit ? stackalloc IntPtr[StackLimit] : new IntPtr[nSave];
        // The inputs array is the library's own (collected before the Forward ran, which gets a copy in the array
        // forms), so exactly nonNull entries are written: the list is not zeroed (SkipLocalsInit).
        for (int i = 0, edges = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { } t)
                inputSpan[edges++] = t.Handle;
        }
        for (int i = 0; i < nOut; i++)
            outputSpan[i] = raw[i].Handle;
        for (int i = 0; i < nDirty; i++)
            dirtySpan[i] = ctx.Dirty![i].Handle;
        for (int i = 0; i < nNonDiff; i++)
            nonDiffSpan[i] = ctx.NonDifferentiable![i].Handle;
        for (int i = 0; i < nSave; i++)
            saveSpan[i] = ctx.SavedAt(i) is { } s ? s.Handle : IntPtr.Zero;

        GCHandle stateHandle = default;
        if (executable)
        {
            long[] meta = NodeState.BuildMeta(inputs, ctx.MaterializeGrads ? raw : null, out int outputsStart);
            NodeState state = forward.CreateState(this, needs, nonNull, meta, outputsStart, ctx);
            stateHandle = GCHandle.Alloc(state);
        }

        int nodeCreated = 0;
        int status;
        fixed (IntPtr* inputHandles = inputSpan, outputHandles = outputSpan, dirty = dirtySpan, nonDiff = nonDiffSpan,
               toSave = saveSpan)
        {
            status = NativeMethods.ca_apply(
                _nativeName, GCHandle.ToIntPtr(stateHandle),
                inputHandles, nonNull, executable ? 1 : 0,
                outputHandles, nOut,
                nonDiff, nNonDiff,
                dirty, nDirty,
                toSave, nSave,
                wrapped, &nodeCreated);
        }
        // The handles above were read from these objects; keep them reachable until the shim has copied them
        // (saved tensors may be referenced by the context only).
        GC.KeepAlive(ctx);
        GC.KeepAlive(inputs);
        GC.KeepAlive(raw);
        if (nodeCreated == 0 && stateHandle.IsAllocated)
            stateHandle.Free();
        if (status != NativeMethods.CA_OK)
            throw new CustomAutogradException(Name, NativeMethods.LastError(), null);
        // Diagnostics contain their own failures: a throwing logger or listener cannot lose the outputs made above.
        if (nodeCreated != 0)
            Diagnostics.Metrics.NodeCreated();
        Diagnostics.Metrics.Applied();
        if (Diagnostics.Log.TraceEnabled)
            Diagnostics.Log.Applied(Name, inputs, nodeCreated != 0);
    }
}

/// <summary>Calls a user Forward (a struct, so that Apply allocates no closure) and makes the node state.</summary>
internal interface IForwardInvoker
{
    /// <summary>True when the array Invoke returns is created by the library, so it may become the result array.</summary>
    bool OwnsOutputArray { get; }

    Tensor[] Invoke(ForwardContext ctx, Tensor?[] inputs);

    /// <summary>Refuses typed arguments that hold one of this call's outputs (a cycle no collector can free).</summary>
    void CheckArgs(AutogradFunction function, Tensor[] outputs);

    NodeState CreateState(AutogradFunction function, InputFlags needs, int edgeCount, long[] meta, int outputsStart, ForwardContext ctx);
}
