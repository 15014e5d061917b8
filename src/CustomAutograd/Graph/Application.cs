// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CustomAutograd.Native;
using CustomAutograd.TorchSharpInternals;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// One application of a custom function: validate, run the Forward under no-grad in its own dispose scope, then
// one native call that creates the node, connects it, wraps the outputs and takes the saved tensors.
internal static class Application
{
    // Applies function to inputs, an array the library owns.
    [SkipLocalsInit]
    internal static unsafe Tensor[] Apply<TForward>(AutogradFunction function, Tensor?[] inputs, TForward forward)
        where TForward : struct, IForwardInvoker
    {
        int n = inputs.Length;
        int nonNull = 0;
        for (int i = 0; i < n; i++)
        {
            Tensor? t = inputs[i];
            if (t is null)
            {
                if (!function.AllowsNullInput(i))
                    throw new ArgumentNullException(nameof(inputs), $"'{function.Name}': input {i} is null.");
                continue;
            }
            if (t.IsInvalid)
                throw new ObjectDisposedException(nameof(Tensor), $"'{function.Name}': input {i} has been disposed.");
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

        var ctx = new ForwardContext(function, needs);
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

            outputCount = ValidateOutputs(function, raw);
            ValidateAfterForward(function, ctx, inputs);
            ValidateMarks(function, ctx, inputs, raw);
            forward.CheckArgs(function, raw);
            if (outputCount > StackOutputs)
            {
                heapWrapped = GC.AllocateArray<IntPtr>(outputCount, pinned: true);
                wrapped = (IntPtr*)Unsafe.AsPointer(ref heapWrapped[0]);
            }
            ConnectAndWrap(function, forward, ctx, inputs, nonNull, needs, executable, raw, wrapped);

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

    private static int ValidateOutputs(AutogradFunction function, Tensor[]? raw)
    {
        if (raw is null || raw.Length == 0)
            throw new CustomAutogradException(function.Name, "the Forward returned no tensor.", null);
        for (int i = 0; i < raw.Length; i++)
        {
            if (raw[i] is null)
                throw new CustomAutogradException(function.Name, $"the Forward returned null as output {i}.", null);
            if (raw[i].IsInvalid)
                throw new CustomAutogradException(function.Name, $"the Forward returned a disposed tensor as output {i}.", null);
        }
        return raw.Length;
    }

    // Every tensor the native call will read must still be alive: a Forward may have disposed an input, a tensor it
    // saved, or one it marked (TorchSharp's own error would only say "Tensor invalid -- empty handle").
    private static void ValidateAfterForward(AutogradFunction function, ForwardContext ctx, Tensor?[] inputs)
    {
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { IsInvalid: true })
                throw new CustomAutogradException(function.Name, $"input {i} was disposed inside the Forward; an input must stay alive until Apply returns.", null);
        }
        int saved = ctx.SavedCount;
        for (int i = 0; i < saved; i++)
        {
            if (ctx.SavedAt(i) is { IsInvalid: true })
            {
                string which = i < ctx.PositionalSavedCount ? $"the tensor saved at position {i}" : $"the tensor saved as '{ctx.SavedNameAt(i)}'";
                throw new CustomAutogradException(
                    function.Name, $"{which} was disposed before backward (inside the Forward); do not dispose a tensor you save, the library keeps it as long as the graph needs it.", null);
            }
        }
        ThrowIfAnyDisposed(function, ctx.Dirty, "MarkDirty");
        ThrowIfAnyDisposed(function, ctx.NonDifferentiable, "MarkNonDifferentiable");
    }

    private static void ThrowIfAnyDisposed(AutogradFunction function, List<Tensor>? tensors, string method)
    {
        if (tensors is null)
            return;
        for (int i = 0; i < tensors.Count; i++)
        {
            if (tensors[i].IsInvalid)
                throw new CustomAutogradException(function.Name, $"tensor {i} passed to {method} was disposed inside the Forward.", null);
        }
    }

    private static void ValidateMarks(AutogradFunction function, ForwardContext ctx, Tensor?[] inputs, Tensor[] raw)
    {
        // By identity: TorchSharp's Tensor.Equals compares values.
        if (ctx.Dirty is { } dirty)
        {
            for (int d = 0; d < dirty.Count; d++)
            {
                if (References.IndexOf(inputs, dirty[d]) < 0)
                    throw new CustomAutogradException(function.Name, $"MarkDirty accepts only input tensors; dirty tensor {d} is not an input of this call.", null);
                if (References.IndexOf(raw, dirty[d]) < 0)
                    throw new CustomAutogradException(function.Name, $"dirty tensor {d} (an input modified in place) must also be returned as an output.", null);
            }
        }
        if (ctx.NonDifferentiable is { } nonDiff)
        {
            for (int d = 0; d < nonDiff.Count; d++)
            {
                if (References.IndexOf(raw, nonDiff[d]) < 0)
                    throw new CustomAutogradException(function.Name, $"MarkNonDifferentiable accepts only outputs; tensor {d} is not returned by the Forward.", null);
            }
        }
    }

    [SkipLocalsInit]   // the handle lists are written before the shim reads them, entry by entry
    private static unsafe void ConnectAndWrap<TForward>(AutogradFunction function, TForward forward, ForwardContext ctx, Tensor?[] inputs, int nonNull, InputFlags needs, bool executable,
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
            NodeState state = forward.CreateState(function, needs, nonNull, meta, outputsStart, ctx);
            stateHandle = GCHandle.Alloc(state);
        }

        int nodeCreated = 0;
        int status;
        fixed (IntPtr* inputHandles = inputSpan, outputHandles = outputSpan, dirty = dirtySpan, nonDiff = nonDiffSpan,
               toSave = saveSpan)
        {
            status = NativeMethods.ca_apply(
                function.NativeName, GCHandle.ToIntPtr(stateHandle),
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
            throw new CustomAutogradException(function.Name, NativeMethods.LastError(), null);
        // Diagnostics contain their own failures: a throwing logger or listener cannot lose the outputs made above.
        if (nodeCreated != 0)
            Diagnostics.Metrics.NodeCreated(function.Name);
        Diagnostics.Metrics.Applied(function.Name);
        if (Diagnostics.Log.TraceEnabled)
            Diagnostics.Log.Applied(function.Name, inputs, nodeCreated != 0);
    }
}
