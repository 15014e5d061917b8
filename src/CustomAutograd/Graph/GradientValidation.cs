// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Checks what a Backward returned before libtorch sees it, so that every mistake is reported with the
// function's name, the input index and the expected and actual values (libtorch's own messages would
// name LibTorchSharp's node type instead).
internal static class GradientValidation
{
    // Validates inputGrads (one per Apply argument) against the node's edges. Extra trailing
    // nulls are allowed, as in PyTorch. Throws InvalidOperationException on any mismatch.
    internal static void MapToEdges(NodeState node, Tensor?[]? inputGrads, int edgeCount)
    {
        string name = node.Function.Name;
        int expected = node.NeedsInputGrad.Count;
        if (inputGrads is null)
            throw new InvalidOperationException($"'{name}': the Backward returned null instead of the gradients.");
        if (inputGrads.Length != expected)
        {
            bool trailingNulls = inputGrads.Length > expected;
            for (int i = expected; trailingNulls && i < inputGrads.Length; i++)
                trailingNulls = inputGrads[i] is null;
            if (!trailingNulls)
            {
                throw new InvalidOperationException(
                    $"'{name}': the Backward returned an incorrect number of gradients (expected {expected}, got {inputGrads.Length}).");
            }
        }

        int at = 0;
        int e = 0;
        for (int i = 0; i < expected; i++)
        {
            bool hasEdge = e < edgeCount && node.TagAt(at) == i;
            Tensor? g = inputGrads[i];
            if (!hasEdge)
            {
                if (g is not null)
                {
                    throw new InvalidOperationException(
                        $"'{name}': the Backward returned a gradient for input {i}, but that input was not a tensor (null); return null there.");
                }
                continue;
            }
            int record = at;
            at = node.NextRecord(at);
            e++;
            // As libtorch's validate_outputs: what is returned for an input that did not require grad (an invalid
            // edge) is ignored.
            if (g is null || !node.NeedsInputGrad[i])
                continue;
            if (g.IsInvalid)
                throw new InvalidOperationException($"'{name}': the gradient returned for input {i} has been disposed.");
            CheckShape(node, i, record, g);
            CheckDtype(name, i, node.DtypeAt(record), g);
            CheckDevice(name, i, node.DeviceTypeAt(record), node.DeviceIndexAt(record), g);
        }
    }

    // Under anomaly detection with NaN checks (torch.autograd.detect_anomaly()), fails as libtorch's engine
    // would for a NaN in a gradient, but with this function's name in the message (libtorch's would name
    // LibTorchSharp's node type). inputGrads has passed MapToEdges.
    internal static void CheckNaN(NodeState node, Tensor?[] inputGrads)
    {
        if (!NativeRuntime.ShouldCheckNaN())
            return;
        int count = node.NeedsInputGrad.Count;
        for (int i = 0; i < count; i++)
        {
            if (inputGrads[i] is not { } g || !node.NeedsInputGrad[i])
                continue;
            using Tensor any = g.isnan().any();
            if (any.item<bool>())
                throw new InvalidOperationException($"Function '{node.Function.Name}' returned nan values in its {i}th output.");
        }
    }

    private static void CheckDtype(string name, int index, ScalarType inputType, Tensor g)
    {
        // libtorch casts a gradient to the input's dtype, but not a complex one to a real dtype.
        ScalarType type = TensorQueries.Dtype(g.Handle);
        if (type == inputType || !torch.is_complex(type) || torch.is_complex(inputType))
            return;
        throw new InvalidOperationException(
            $"'{name}': the gradient returned for input {index} is complex ({type}) but the input is real ({inputType}); " +
            "return a real gradient for a real input (for example the real part).");
    }

    private static void CheckShape(NodeState node, int index, int record, Tensor g)
    {
        int inputDim = node.NDim(record);
        long gradDim = TensorQueries.Dim(g.Handle);
        bool ok = gradDim >= inputDim;
        for (int k = 0; ok && k < inputDim; k++)
        {
            // libtorch's is_expandable_to(input shape, gradient shape): trailing sizes equal, or the input's is 1.
            long size = node.SizeAt(record, inputDim - 1 - k);
            long target = TensorQueries.Size(g.Handle, gradDim - 1 - k);
            ok = size == target || size == 1;
        }
        if (ok)
            return;
        throw new InvalidOperationException(
            $"'{node.Function.Name}': the gradient returned for input {index} has shape {ShapeFormat.Format(g.shape)}, but the input has shape " +
            $"{ShapeFormat.Format(node.ShapeAt(record))} (a gradient must have the input's shape, or a shape the input broadcasts to, which is then summed).");
    }

    private static void CheckDevice(string name, int index, DeviceType inputType, int inputIndex, Tensor g)
    {
        DeviceType type = TensorQueries.DeviceType(g.Handle);
        if (type == inputType && (type == DeviceType.CPU || TensorQueries.DeviceIndex(g.Handle) == inputIndex))
            return;
        // libtorch moves a 0-dim gradient to the input's device itself.
        if (TensorQueries.Dim(g.Handle) == 0)
            return;
        throw new InvalidOperationException(
            $"'{name}': the gradient returned for input {index} is on {FormatDevice(type, g.device_index)}, but the input is on " +
            $"{FormatDevice(inputType, inputIndex)}.");
    }

    private static string FormatDevice(DeviceType type, int index) =>
        type == DeviceType.CPU ? "cpu" : type.ToString().ToLowerInvariant() + ":" + index;
}
