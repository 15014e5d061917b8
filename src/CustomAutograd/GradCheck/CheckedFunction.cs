// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using CustomAutograd.Graph;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// The function under check at one point, shared by every part of a check: the working inputs (private copies
// of those that require grad; the others, nulls included, as given), which inputs and outputs are
// differentiable, their names in reports, and evaluations validated against the first one.
internal sealed class CheckedFunction(string checkName, Func<Tensor?[], Tensor[]> function, Tensor?[] inputs, int[] diffInputs,
                                      GradCheckOptions options, Func<int, string> inputName, Func<int, string> outputName)
{
    private long[][] _outputShapes = Array.Empty<long[]>();

    // "GradCheck" or "GradGradCheck", for messages.
    internal string CheckName { get; } = checkName;

    internal GradCheckOptions Options { get; } = options;

    internal int InputCount => inputs.Length;

    // The positions of the inputs that require grad, in order.
    internal int[] DiffInputs { get; } = diffInputs;

    // The positions of the outputs that require grad, in order (known after EvaluateCenter).
    internal int[] DiffOutputs { get; private set; } = Array.Empty<int>();

    // The number of outputs (known after EvaluateCenter).
    internal int OutputCount => _outputShapes.Length;

    internal string InputName(int i) => inputName(i);

    internal string OutputName(int o) => outputName(o);

    // The working copy of differentiable input i.
    internal Tensor Input(int i) =>
        inputs[i] ?? throw new UnreachableException($"{InputName(i)} is null, so it is not differentiable.");

    internal long[] OutputShape(int o) => _outputShapes[o];

    // The working copies of the differentiable inputs, in the order of DiffInputs.
    internal Tensor[] DiffInputTensors() => Array.ConvertAll(DiffInputs, Input);

    // The first evaluation, at the unperturbed point: records the outputs' count, shapes and differentiability,
    // which every later evaluation must match.
    internal Tensor[] EvaluateCenter()
    {
        Tensor[] center = Evaluate();
        _outputShapes = Array.ConvertAll(center, y => y.shape);
        var diffOutputs = new List<int>();
        for (int o = 0; o < center.Length; o++)
        {
            Tensor y = center[o];
            if (!y.requires_grad)
                continue;
            if (y.is_complex())
            {
                throw new NotSupportedException(
                    $"{OutputName(o)} is complex ({y.dtype}); gradient checking of complex functions is not supported.");
            }
            diffOutputs.Add(o);
        }
        DiffOutputs = diffOutputs.ToArray();
        return center;
    }

    // Calls the function on the working inputs and validates what it returns.
    internal Tensor[] Evaluate()
    {
        Tensor[] outputs = function((Tensor?[])inputs.Clone())
            ?? throw new InvalidOperationException($"{CheckName}: the function returned null instead of an array of outputs.");
        if (outputs.Length == 0)
            throw new InvalidOperationException($"{CheckName}: the function returned no output.");
        for (int o = 0; o < outputs.Length; o++)
        {
            if (outputs[o] is null)
                throw new InvalidOperationException($"{CheckName}: the function returned null as {OutputName(o)}.");
            if (outputs[o].IsInvalid)
                throw new InvalidOperationException($"{CheckName}: the function returned a disposed tensor as {OutputName(o)}.");
        }
        if (_outputShapes.Length == 0)
            return outputs;
        if (outputs.Length != _outputShapes.Length)
        {
            throw new InvalidOperationException(
                $"{CheckName}: the function returned {outputs.Length} outputs after a perturbation, {_outputShapes.Length} before.");
        }
        for (int o = 0; o < outputs.Length; o++)
        {
            if (!outputs[o].shape.AsSpan().SequenceEqual(_outputShapes[o]))
            {
                throw new InvalidOperationException(
                    $"{CheckName}: {OutputName(o)} has shape {ShapeFormat.Format(outputs[o].shape)} after a perturbation, " +
                    $"{ShapeFormat.Format(_outputShapes[o])} before.");
            }
        }
        return outputs;
    }

    // Evaluates and returns the selected outputs as detached float64 vectors (copies: an output
    // may be a view of an input, which the next perturbation changes).
    internal Tensor[] EvaluateFlat(int[] outputs)
    {
        Tensor[] all = Evaluate();
        return Array.ConvertAll(outputs, o => all[o].detach().reshape(-1).to_type(ScalarType.Float64, copy: true));
    }

    // The differentiable outputs of an evaluation and a zero (contiguous) gradient for each.
    internal (Tensor[] Outputs, Tensor[] Zeros) DifferentiableOutputsWithZeroGrads(Tensor[] evaluation)
    {
        Tensor[] ys = Array.ConvertAll(DiffOutputs, o => evaluation[o]);
        Tensor[] zeros = Array.ConvertAll(ys, y => torch.zeros(y.shape, dtype: y.dtype, device: y.device));
        return (ys, zeros);
    }

    // A zero float64 Jacobian of output o with respect to input i:
    // one row per output element, one column per input element, on the input's device.
    internal Tensor NewJacobian(int o, int i)
    {
        Tensor x = Input(i);
        return torch.zeros(new[] { FlatIndex.Numel(_outputShapes[o]), x.numel() }, dtype: ScalarType.Float64, device: x.device);
    }

    // Records a failure in result, naming the output and input involved.
    internal void Fail(GradCheckResult result, GradCheckFailureKind kind, int? o, int? i, string message, Exception? exception = null)
    {
        result.FailureKind = kind;
        result.FailureMessage = message;
        result.OutputIndex = o;
        result.OutputName = o is int oi ? OutputName(oi) : null;
        result.InputIndex = i;
        result.InputName = i is int ii ? InputName(ii) : null;
        result.Exception = exception;
    }
}
