// SPDX-License-Identifier: MIT
// The custom functions of PyTorch's documentation, written as a user coming from PyTorch would write them:
// "Extending torch.autograd" (LinearFunction, MulConstant, Exp) and the tutorial "Defining new autograd
// functions" (LegendrePolynomial3). The test project compiles this file too (PyTorchDocsExamplesTests).
using System;
using static TorchSharp.torch;

namespace CustomAutograd.Examples.PyTorchPorts;

/// <summary>PyTorch's documented custom functions, ported.</summary>
internal static class PortedFunctions
{
    /// <summary>
    /// <c>LinearFunction(input, weight, bias=None)</c>: <c>input @ weight.T + bias</c>, the bias optional. The
    /// Backward computes only the gradients that are needed, as PyTorch's does with <c>ctx.needs_input_grad</c>.
    /// </summary>
    internal static readonly TernaryFunction Linear = AutogradFunction.Create(
        "LinearFunction",
        (ctx, input, weight, bias) =>
        {
            ctx.SaveForBackward(input, weight, bias);
            Tensor output = input.mm(weight.t());
            return bias is null ? output : output + bias.unsqueeze(0).expand_as(output);
        },
        (ctx, gradOutput) =>
        {
            // input, weight, bias = ctx.saved_tensors
            if (ctx.SavedTensors is not [{ } input, { } weight, var bias])
                throw new InvalidOperationException("LinearFunction saves its input, weight and bias.");
            Tensor? gradInput = null, gradWeight = null, gradBias = null;
            if (ctx.NeedsInputGrad is [true, _, _])
                gradInput = gradOutput.mm(weight);
            if (ctx.NeedsInputGrad is [_, true, _])
                gradWeight = gradOutput.t().mm(input);
            if (bias is not null && ctx.NeedsInputGrad is [_, _, true])
                gradBias = gradOutput.sum(dim: 0);   // not sum(0): TorchSharp binds a literal 0 to sum(ScalarType?)
            return (gradInput, gradWeight, gradBias);
        });

    /// <summary><c>MulConstant(tensor, constant)</c>: <c>tensor * constant</c>, the constant a typed argument
    /// (it gets no gradient, PyTorch's <c>None</c>).</summary>
    internal static readonly UnaryFunction<double> MulConstant = AutogradFunction.CreateWithArgs<double>(
        "MulConstant",
        (ctx, tensor, constant) => tensor * constant,
        (ctx, gradOutput, constant) => gradOutput * constant);

    /// <summary><c>LegendrePolynomial3(input)</c>: <c>P3(x) = (5 x^3 - 3 x) / 2</c>, whose derivative is
    /// <c>1.5 (5 x^2 - 1)</c>.</summary>
    internal static readonly UnaryFunction LegendrePolynomial3 = AutogradFunction.Create(
        "LegendrePolynomial3",
        (ctx, input) =>
        {
            ctx.SaveForBackward(input);
            return 0.5 * (5 * input.pow(3) - 3 * input);
        },
        (ctx, gradOutput) => ctx.SavedTensors is [{ } input]
            ? gradOutput * 1.5 * (5 * input.pow(2) - 1)
            : throw new InvalidOperationException("LegendrePolynomial3 saves its input."));

    /// <summary><c>Exp(i)</c>: <c>exp(i)</c>, saving its output, which is also its derivative.</summary>
    internal static readonly UnaryFunction Exp = AutogradFunction.Create(
        "Exp",
        (ctx, i) =>
        {
            Tensor result = i.exp();
            ctx.SaveForBackward(result);
            return result;
        },
        (ctx, gradOutput) => ctx.SavedTensors is [{ } result]
            ? gradOutput * result
            : throw new InvalidOperationException("Exp saves its output."));
}
