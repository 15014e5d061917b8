// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using CustomAutograd.Graph;
using CustomAutograd.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Entry points into libtorch's autograd engine that never terminate the process and report every failure
/// the same way. TorchSharp 0.107's <c>torch.autograd.grad</c> calls libtorch without an error guard, so any
/// error there (a failing custom Backward included) ends the process; <see cref="Grad"/> turns every error into
/// a <see cref="CustomAutogradException"/>. <see cref="Backward(IReadOnlyList{Tensor}, IReadOnlyList{Tensor?}?, bool?, bool, IReadOnlyList{Tensor}?)"/>
/// does the same for <c>torch.autograd.backward</c>: where TorchSharp's <c>loss.backward()</c> raises its own
/// exception type with our message, these raise <see cref="CustomAutogradException"/> whose
/// <see cref="Exception.InnerException"/> is the exception the failing Backward threw.
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
        CheckTensors(outputs, nameof(outputs), atLeastOne: true);
        CheckTensors(inputs, nameof(inputs), atLeastOne: false);
        NativeRuntime.EnsureInitialized();

        var temporaries = new List<Tensor>();
        try
        {
            // Pinned arrays, not the stack: a model can have many thousands of parameters.
            var outputHandles = new PinnedHandles(outputs);
            var inputHandles = new PinnedHandles(inputs);
            PinnedHandles gradHandles = GradientHandles(outputs, gradOutputs, nameof(gradOutputs), temporaries);
            var results = new PinnedHandles(inputs.Count);
            bool retain = retainGraph ?? createGraph;
            int status = NativeMethods.ca_grad(outputHandles.Pointer, outputHandles.Count, inputHandles.Pointer, inputHandles.Count,
                                               gradHandles.Pointer, gradHandles.Count,
                                               retain ? 1 : 0, createGraph ? 1 : 0, allowUnused ? 1 : 0, results.Pointer);
            // The handles were read from these tensors; keep them (and the pinned arrays) reachable until now.
            GC.KeepAlive(outputs);
            GC.KeepAlive(inputs);
            GC.KeepAlive(gradOutputs);
            GC.KeepAlive(temporaries);
            outputHandles.KeepAlive();
            inputHandles.KeepAlive();
            gradHandles.KeepAlive();
            if (status != NativeMethods.CA_OK)
                throw Failure();

            var grads = new Tensor?[inputs.Count];
            for (int i = 0; i < grads.Length; i++)
                grads[i] = results.Pointer[i] == IntPtr.Zero ? null : Tensor.UnsafeCreateTensor(results.Pointer[i]);
            results.KeepAlive();
            return grads;
        }
        finally
        {
            foreach (Tensor t in temporaries)
                t.Dispose();
        }
    }

    /// <summary>
    /// Computes the gradients of <paramref name="tensors"/> and accumulates them into the <c>.grad</c> of the
    /// graph's leaves (or only of <paramref name="inputs"/>). Equivalent to <c>torch.autograd.backward</c>; the
    /// same as TorchSharp's <c>loss.backward()</c>, except that every failure is a <see cref="CustomAutogradException"/>
    /// carrying the original exception of a failing custom Backward as its inner exception.
    /// </summary>
    /// <param name="tensors">The tensors to differentiate (usually one loss).</param>
    /// <param name="gradTensors">The gradient of each tensor. A null list or a null entry means ones, which is
    /// allowed only for scalar tensors.</param>
    /// <param name="retainGraph">Keep the graph for another backward; defaults to <paramref name="createGraph"/>.</param>
    /// <param name="createGraph">Build a graph of the gradient computation, for higher-order derivatives.</param>
    /// <param name="inputs">Accumulate only into these tensors' <c>.grad</c>; null (the default) means every leaf.</param>
    /// <exception cref="CustomAutogradException">libtorch reported an error (for a failing custom Backward, the
    /// inner exception is the exception that Backward threw).</exception>
    public static unsafe void Backward(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor?>? gradTensors = null,
                                       bool? retainGraph = null, bool createGraph = false,
                                       IReadOnlyList<Tensor>? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        CheckTensors(tensors, nameof(tensors), atLeastOne: true);
        if (inputs is not null)
        {
            CheckTensors(inputs, nameof(inputs), atLeastOne: false);
            if (inputs.Count == 0)
                throw new ArgumentException("inputs is empty; pass null to accumulate into every leaf.", nameof(inputs));
        }
        NativeRuntime.EnsureInitialized();

        var temporaries = new List<Tensor>();
        try
        {
            var tensorHandles = new PinnedHandles(tensors);
            PinnedHandles gradHandles = GradientHandles(tensors, gradTensors, nameof(gradTensors), temporaries);
            PinnedHandles inputHandles = inputs is null ? new PinnedHandles(0) : new PinnedHandles(inputs);
            bool retain = retainGraph ?? createGraph;
            int status = NativeMethods.ca_backward(tensorHandles.Pointer, tensorHandles.Count, gradHandles.Pointer, gradHandles.Count,
                                                   retain ? 1 : 0, createGraph ? 1 : 0, inputHandles.Pointer, inputHandles.Count);
            GC.KeepAlive(tensors);
            GC.KeepAlive(gradTensors);
            GC.KeepAlive(inputs);
            GC.KeepAlive(temporaries);
            tensorHandles.KeepAlive();
            gradHandles.KeepAlive();
            inputHandles.KeepAlive();
            if (status != NativeMethods.CA_OK)
                throw Failure();
        }
        finally
        {
            foreach (Tensor t in temporaries)
                t.Dispose();
        }
    }

    /// <summary>
    /// <see cref="Backward(IReadOnlyList{Tensor}, IReadOnlyList{Tensor?}?, bool?, bool, IReadOnlyList{Tensor}?)"/>
    /// for one tensor: <c>Autograd.Backward(loss)</c> is <c>loss.backward()</c> with
    /// <see cref="CustomAutogradException"/> for every failure.
    /// </summary>
    /// <param name="tensor">The tensor to differentiate (usually a loss).</param>
    /// <param name="gradTensor">Its gradient; null means ones, allowed only for a scalar.</param>
    /// <param name="retainGraph">Keep the graph for another backward; defaults to <paramref name="createGraph"/>.</param>
    /// <param name="createGraph">Build a graph of the gradient computation, for higher-order derivatives.</param>
    /// <param name="inputs">Accumulate only into these tensors' <c>.grad</c>; null (the default) means every leaf.</param>
    /// <exception cref="CustomAutogradException">libtorch reported an error.</exception>
    public static void Backward(Tensor tensor, Tensor? gradTensor = null, bool? retainGraph = null, bool createGraph = false,
                                IReadOnlyList<Tensor>? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        Backward(new[] { tensor }, gradTensor is null ? null : new[] { gradTensor }, retainGraph, createGraph, inputs);
    }

    // The exception for a failed native call: the original exception of a failing Backward as the inner one.
    private static CustomAutogradException Failure()
    {
        string message = NativeMethods.LastError();
        return BackwardFailures.TryGet(message, out Exception? original)
            ? new CustomAutogradException(message, original!)
            : new CustomAutogradException(message);
    }

    // The handles of the gradients for outputs: none when grads is null
    // (libtorch implies ones for scalars), otherwise one per output, with explicit ones for null entries.
    private static unsafe PinnedHandles GradientHandles(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor?>? grads, string parameter,
                                                 List<Tensor> temporaries)
    {
        if (grads is null)
            return new PinnedHandles(0);
        if (grads.Count != outputs.Count)
            throw new ArgumentException($"{parameter} has {grads.Count} entries but there are {outputs.Count} tensors to differentiate.", parameter);
        var handles = new PinnedHandles(outputs.Count);
        for (int i = 0; i < outputs.Count; i++)
        {
            Tensor? g = grads[i];
            if (g is null)
            {
                // LibTorchSharp cannot pass an undefined tensor in a list; make the implicit ones explicit.
                if (outputs[i].numel() != 1)
                {
                    throw new ArgumentException(
                        $"{parameter}[{i}] is null but tensor {i} is not a scalar (shape {ShapeFormat.Format(outputs[i].shape)}); " +
                        "ones can be implied only for scalars.", parameter);
                }
                g = torch.ones_like(outputs[i]);
                temporaries.Add(g);
            }
            else if (g.IsInvalid)
            {
                throw new ObjectDisposedException(nameof(Tensor), $"{parameter}[{i}] has been disposed.");
            }
            handles.Pointer[i] = g.Handle;
        }
        return handles;
    }

    private static void CheckTensors(IReadOnlyList<Tensor> tensors, string parameter, bool atLeastOne)
    {
        if (atLeastOne && tensors.Count == 0)
            throw new ArgumentException($"At least one tensor is required in {parameter}.", parameter);
        for (int i = 0; i < tensors.Count; i++)
        {
            if (tensors[i] is null)
                throw new ArgumentNullException(parameter, $"{parameter}[{i}] is null.");
            if (tensors[i].IsInvalid)
                throw new ObjectDisposedException(nameof(Tensor), $"{parameter}[{i}] has been disposed.");
        }
    }

    // A pinned array of tensor handles for the C ABI (never on the stack: lists can be long).
    private readonly unsafe struct PinnedHandles
    {
        private readonly IntPtr[] _array;

        internal PinnedHandles(int count)
        {
            Count = count;
            _array = GC.AllocateArray<IntPtr>(Math.Max(count, 1), pinned: true);
        }

        internal PinnedHandles(IReadOnlyList<Tensor> tensors)
            : this(tensors.Count)
        {
            for (int i = 0; i < tensors.Count; i++)
                _array[i] = tensors[i].Handle;
        }

        internal int Count { get; }

        internal IntPtr* Pointer => (IntPtr*)Unsafe.AsPointer(ref _array[0]);

        internal void KeepAlive() => GC.KeepAlive(_array);
    }
}
