// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Interop;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Entry points into libtorch's autograd engine that never terminate the process. TorchSharp 0.107's
/// <c>torch.autograd.grad</c> calls libtorch without an error guard, so any error there (a failing custom
/// Backward included) ends the process; <see cref="Grad"/> turns every error into a .NET exception.
/// </summary>
public static class Autograd
{
    /// <summary>
    /// Computes and returns the gradients of <paramref name="outputs"/> with respect to <paramref name="inputs"/>,
    /// without touching <c>.grad</c>. Equivalent to <c>torch.autograd.grad</c>.
    /// </summary>
    /// <param name="outputs">The tensors to differentiate.</param>
    /// <param name="inputs">The tensors to differentiate with respect to.</param>
    /// <param name="gradOutputs">The gradient of each output (the vector of the vector-Jacobian product). A null list
    /// or a null entry means ones, which is allowed only for scalar outputs.</param>
    /// <param name="retainGraph">Keep the graph for another backward; defaults to <paramref name="createGraph"/>.</param>
    /// <param name="createGraph">Build a graph of the gradient computation, for higher-order derivatives.</param>
    /// <param name="allowUnused">Return null for inputs the outputs do not depend on, instead of failing.</param>
    /// <returns>One gradient per input (null only when unused and <paramref name="allowUnused"/> is set); the
    /// tensors belong to the caller's dispose scope.</returns>
    /// <exception cref="CustomAutogradException">libtorch reported an error (for a failing custom Backward, the
    /// inner exception is the exception that Backward threw).</exception>
    public static unsafe Tensor?[] Grad(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> inputs,
                                        IReadOnlyList<Tensor?>? gradOutputs = null, bool? retainGraph = null,
                                        bool createGraph = false, bool allowUnused = false)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(inputs);
        if (outputs.Count == 0)
            throw new ArgumentException("At least one output is required.", nameof(outputs));
        if (gradOutputs is not null && gradOutputs.Count != outputs.Count)
        {
            throw new ArgumentException(
                $"gradOutputs has {gradOutputs.Count} entries but there are {outputs.Count} outputs.", nameof(gradOutputs));
        }
        CheckTensors(outputs, nameof(outputs));
        CheckTensors(inputs, nameof(inputs));
        NativeRuntime.EnsureInitialized();

        int nOut = outputs.Count, nIn = inputs.Count;
        var temporaries = new List<Tensor>();
        try
        {
            // Pinned arrays, not the stack: a model can have many thousands of parameters.
            IntPtr[] outputArray = GC.AllocateArray<IntPtr>(nOut, pinned: true);
            IntPtr[] inputArray = GC.AllocateArray<IntPtr>(Math.Max(nIn, 1), pinned: true);
            IntPtr[] gradArray = GC.AllocateArray<IntPtr>(nOut, pinned: true);
            IntPtr[] resultArray = GC.AllocateArray<IntPtr>(Math.Max(nIn, 1), pinned: true);
            IntPtr* outputHandles = (IntPtr*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref outputArray[0]);
            IntPtr* inputHandles = (IntPtr*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref inputArray[0]);
            IntPtr* gradHandles = (IntPtr*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref gradArray[0]);
            IntPtr* results = (IntPtr*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref resultArray[0]);
            for (int i = 0; i < nOut; i++)
                outputHandles[i] = outputs[i].Handle;
            for (int i = 0; i < nIn; i++)
            {
                inputHandles[i] = inputs[i].Handle;
                results[i] = IntPtr.Zero;
            }
            int nGrad = 0;
            if (gradOutputs is not null)
            {
                nGrad = nOut;
                for (int i = 0; i < nOut; i++)
                {
                    Tensor? g = gradOutputs[i];
                    if (g is null)
                    {
                        // LibTorchSharp cannot pass an undefined tensor here; make the implicit ones explicit.
                        if (outputs[i].numel() != 1)
                        {
                            throw new ArgumentException(
                                $"gradOutputs[{i}] is null but output {i} is not a scalar (shape {GradientValidation.Format(outputs[i].shape)}); " +
                                "ones can be implied only for scalar outputs.", nameof(gradOutputs));
                        }
                        g = torch.ones_like(outputs[i]);
                        temporaries.Add(g);
                    }
                    else if (g.IsInvalid)
                    {
                        throw new ObjectDisposedException(nameof(Tensor), $"gradOutputs[{i}] has been disposed.");
                    }
                    gradHandles[i] = g.Handle;
                }
            }

            bool retain = retainGraph ?? createGraph;
            int status = NativeMethods.ca_grad(outputHandles, nOut, inputHandles, nIn, gradHandles, nGrad,
                                               retain ? 1 : 0, createGraph ? 1 : 0, allowUnused ? 1 : 0, results);
            // The handles were read from these tensors; keep them (and the pinned arrays) reachable until now.
            GC.KeepAlive(outputs);
            GC.KeepAlive(inputs);
            GC.KeepAlive(gradOutputs);
            GC.KeepAlive(outputArray);
            GC.KeepAlive(inputArray);
            GC.KeepAlive(gradArray);
            GC.KeepAlive(resultArray);
            if (status != NativeMethods.CA_OK)
            {
                string message = NativeMethods.LastError();
                var failure = new CustomAutogradException(message);
                throw BackwardFailures.TryGet(failure, out Exception? original)
                    ? new CustomAutogradException(message, original!)
                    : failure;
            }

            var grads = new Tensor?[nIn];
            for (int i = 0; i < nIn; i++)
                grads[i] = results[i] == IntPtr.Zero ? null : Tensor.UnsafeCreateTensor(results[i]);
            return grads;
        }
        finally
        {
            foreach (Tensor t in temporaries)
                t.Dispose();
        }
    }

    private static void CheckTensors(IReadOnlyList<Tensor> tensors, string parameter)
    {
        for (int i = 0; i < tensors.Count; i++)
        {
            if (tensors[i] is null)
                throw new ArgumentNullException(parameter, $"{parameter}[{i}] is null.");
            if (tensors[i].IsInvalid)
                throw new ObjectDisposedException(nameof(Tensor), $"{parameter}[{i}] has been disposed.");
        }
    }
}
