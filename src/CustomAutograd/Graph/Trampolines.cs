// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CustomAutograd.Native;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// The static entry points libtorch's engine reaches through the shim's per-node closures. Each finds
// its node's state through the GCHandle passed as user data, and nothing may unwind out of them: every
// failure becomes a status code and a message (Note [exceptions into the engine] in node.cpp).
internal static unsafe class Trampolines
{
    // Note [lent gradients]: a gradient returned by a Backward that this call does not own (e.g. a tensor its
    // delegate captured) is lent to libtorch by handle, and the engine copies it only after the callback
    // returns. Keeping the managed tensor reachable until the next Backward on the same thread guarantees that no
    // finalizer frees the handle before that copy. Such a tensor is owned elsewhere anyway, so this only matters
    // when that owner drops it in the meantime.
    [ThreadStatic]
    private static Tensor?[]? t_lent;

    internal static IntPtr BackwardPointer =>
        (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, int, IntPtr*, int, IntPtr*, byte*, int, int>)&Backward;

    internal static IntPtr ReleasePointer => (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, void>)&Release;

    // Note [adopted tensors]: the incoming gradients and saved tensors are wrapped without joining a dispose
    // scope (AdoptedTensors). The trampoline keeps them in this array, taken out of its per-thread slot while a
    // Backward runs (a nested backward on the same thread gets its own), and when the Backward returns either
    // hands each back to libtorch (it was returned as a gradient) or releases it.
    [ThreadStatic]
    private static Tensor?[]? t_adoptedSlot;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Backward(IntPtr state, IntPtr* grads, int nGrads, IntPtr* saved, int nSaved,
                                IntPtr* results, byte* owned, int nResults)
    {
        NodeState? node = null;
        DelegateScope scope = default;
        bool scoped = false;
        Tensor?[]? adopted = null;
        int nAdopted = nGrads + nSaved;
        long started = Diagnostics.Metrics.BackwardStarting();
        try
        {
            node = (NodeState)GCHandle.FromIntPtr(state).Target!;
            Diagnostics.Metrics.BackwardCalled(node.Function.Name);
            adopted = RentAdopted(nAdopted);
            var gradTensors = new Tensor?[nGrads];
            Adopt(grads, gradTensors, adopted, 0);
            Tensor?[] savedTensors = nSaved == 0 ? Array.Empty<Tensor?>() : new Tensor?[nSaved];
            Adopt(saved, savedTensors, adopted, nGrads);
            // Everything the Backward creates (materialised zeros included) dies with this scope, except the
            // gradients handed back to libtorch.
            scope = DelegateScope.Enter();
            scoped = true;

            if (node.OutputsStart >= 0)
                MaterializeMissing(node, gradTensors);

            if (Diagnostics.Log.TraceEnabled)
                Diagnostics.Log.BackwardRunning(node.Function.Name, gradTensors);
            bool onceDifferentiable = node.Function.Options.OnceDifferentiable;
            var ctx = new BackwardContext(node, savedTensors) { MayReuseGradients = !onceDifferentiable };
            Tensor?[] inputGrads;
            bool gradMode = onceDifferentiable && NativeRuntime.IsGradEnabled();
            if (gradMode)
                NativeRuntime.SetGradEnabled(false);
            try
            {
                inputGrads = node.Function.InvokeBackward(ctx, gradTensors);
            }
            finally
            {
                ctx.Invalidate();
                if (gradMode)
                    NativeRuntime.SetGradEnabled(true);
            }
            if (gradMode)
                inputGrads = OnceDifferentiableGuard.Connect(node.Function, gradTensors, inputGrads ?? Array.Empty<Tensor?>());

            GradientValidation.MapToEdges(node, inputGrads, nResults);
            GradientValidation.CheckNaN(node, inputGrads);
            t_lent = null;
            // One walk over the edge records (an edge's record says which Apply argument it belongs to).
            for (int e = 0, at = 0; e < nResults; e++, at = node.NextRecord(at))
            {
                Tensor? g = inputGrads[node.TagAt(at)];
                results[e] = IntPtr.Zero;
                owned[e] = 0;
                if (g is null)
                    continue;
                int earlier = FindEarlier(node, inputGrads, e, g);
                int adoptedAt;
                if (earlier >= 0)
                {
                    // The same tensor for two inputs: one owned handle, borrowed again.
                    results[e] = results[earlier];
                }
                else if ((adoptedAt = References.IndexOf(adopted, g)) >= 0)
                {
                    // An incoming gradient or saved tensor returned as is: its handle goes straight back.
                    results[e] = g.DecoupleFromNativeHandle();
                    owned[e] = 1;
                    adopted[adoptedAt] = null;
                }
                else if (scope.Scope.Contains(g))
                {
                    // Created here: hand its handle to the shim, which disposes it once libtorch has taken it,
                    // keeping TorchSharp's dispose-scope statistics exact for users who watch them.
                    results[e] = scope.HandOver(g);
                    owned[e] = 1;
                }
                else
                {
                    // Owned elsewhere (e.g. a tensor captured by the delegate): lent until the engine copies it.
                    results[e] = g.Handle;
                    t_lent = inputGrads;
                }
            }
            return NativeMethods.CA_OK;
        }
        catch (Exception e)
        {
            ReportFailure(node, e);
            return NativeMethods.CA_ERR_CALLBACK;
        }
        finally
        {
            try
            {
                try
                {
                    if (scoped)
                        scope.Exit();
                }
                finally
                {
                    // Released even when disposing the scope's temporaries failed: these handles are ours alone.
                    if (adopted is not null)
                    {
                        for (int i = 0; i < nAdopted; i++)
                            AdoptedTensors.Release(adopted[i]);
                        ReturnAdopted(adopted, nAdopted);
                    }
                }
                if (node is not null)
                    Diagnostics.Metrics.BackwardFinished(node.Function.Name, started);
            }
            catch (Exception e)
            {
                try
                {
                    Diagnostics.Log.CallbackCleanupFailed(e);
                }
                catch
                {
                    // Nothing may escape into native code, not even from a logger.
                }
            }
        }
    }

    private static Tensor?[] RentAdopted(int count)
    {
        Tensor?[]? slot = t_adoptedSlot;
        if (slot is not null && slot.Length >= count)
        {
            t_adoptedSlot = null;
            return slot;
        }
        return new Tensor?[Math.Max(count, 4)];
    }

    private static void ReturnAdopted(Tensor?[] array, int count)
    {
        Array.Clear(array, 0, count);
        if (array.Length <= 64)
            t_adoptedSlot = array;
    }

    // Wraps the non-null handles into tensors, recording each in adopted from offset.
    private static void Adopt(IntPtr* handles, Tensor?[] tensors, Tensor?[] adopted, int offset)
    {
        for (int i = 0; i < tensors.Length; i++)
        {
            if (handles[i] != IntPtr.Zero)
                adopted[offset + i] = tensors[i] = AdoptedTensors.Wrap(handles[i]);
        }
    }

    private static int FindEarlier(NodeState node, Tensor?[] inputGrads, int edge, Tensor g)
    {
        for (int k = 0, at = 0; k < edge; k++, at = node.NextRecord(at))
        {
            if (ReferenceEquals(inputGrads[node.TagAt(at)], g))
                return k;
        }
        return -1;
    }

    // Zeros for the outputs whose gradient libtorch left undefined, on the output's device and dtype.
    private static void MaterializeMissing(NodeState node, Tensor?[] gradTensors)
    {
        int at = node.OutputsStart;
        for (int i = 0; i < gradTensors.Length; i++)
        {
            if (gradTensors[i] is null)
            {
                gradTensors[i] = torch.zeros(node.ShapeAt(at), node.DtypeAt(at),
                                             new Device(node.DeviceTypeAt(at), node.DeviceIndexAt(at)));
            }
            at = node.NextRecord(at);
        }
    }

    private static void ReportFailure(NodeState? node, Exception e)
    {
        try
        {
            string name = node?.Function.Name ?? "CustomAutograd function";
            SetCallbackError(BackwardFailures.Record(name, e));
            Diagnostics.Metrics.BackwardFailed(name);
            Diagnostics.Log.BackwardFailed(name, e);
        }
        catch
        {
            // Last resort: the status code alone still makes the shim raise an error.
        }
    }

    private static void SetCallbackError(string message)
    {
        fixed (byte* p = NativeMethods.ToUtf8Z(message))
            NativeMethods.ca_set_callback_error(p);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void Release(IntPtr state)
    {
        try
        {
            GCHandle handle = GCHandle.FromIntPtr(state);
            string? name = (handle.Target as NodeState)?.Function.Name;
            handle.Free();
            if (name is not null)
                Diagnostics.Metrics.NodeReleased(name);
        }
        catch (Exception e)
        {
            try
            {
                Diagnostics.Log.CallbackCleanupFailed(e);
            }
            catch
            {
                // Nothing may escape into libtorch's node destructor.
            }
        }
    }
}
