// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using CustomAutograd.Graph;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// The checks besides the Jacobians, as PyTorch's gradcheck makes them: outputs cut off from the graph, a
// backward that ignores its output gradient, and a backward that cannot cope with undefined output gradients.
internal static class BackwardContractChecks
{
    // Passes its input through and gives its input an undefined gradient, as PyTorch's
    // torch._C._functions.UndefinedGrad.
    private static readonly UnaryFunction UndefinedGradFunction = AutogradFunction.Create(
        "GradCheck.UndefinedGrad",
        static (ctx, x) => x.clone(),
        static (ctx, grad) => null,
        new AutogradFunctionOptions { MaterializeGrads = false });

    // PyTorch's check for functions without differentiable outputs: the outputs must not change
    // when the inputs are perturbed.
    internal static void NoDifferentiableOutputs(CheckedFunction f, GradCheckResult result)
    {
        var floating = new List<int>();
        using (DisposeScope probe = torch.NewDisposeScope())
        {
            Tensor[] outputs = f.Evaluate();
            for (int o = 0; o < outputs.Length; o++)
            {
                if (outputs[o].is_floating_point())
                    floating.Add(o);
            }
        }
        if (floating.Count == 0)
            return;
        Tensor[,] numerical = NumericalJacobian.Compute(f, f.DiffInputs, floating.ToArray());
        for (int oo = 0; oo < floating.Count; oo++)
        {
            for (int ii = 0; ii < f.DiffInputs.Length; ii++)
            {
                Tensor n = numerical[oo, ii];
                if (n.numel() == 0)
                    continue;
                double max = n.abs().max().item<double>();
                if (max <= f.Options.Atol)
                    continue;
                int o = floating[oo], i = f.DiffInputs[ii];
                f.Fail(result, GradCheckFailureKind.NonZeroNumericalGradient, o, i,
                       $"no output requires grad, but the numerical gradient of {f.OutputName(o)} with respect to " +
                       $"{f.InputName(i)} is not zero (max |value| {GradCheckFormat.Number(max)}): the function " +
                       "is differentiable but its outputs are not connected to the graph.");
                return;
            }
        }
    }

    // PyTorch's _test_backward_mul_by_grad_output: backward with all output gradients zero must
    // give zero input gradients of the inputs' dtype, device and shape.
    internal static void MultipliedByGradOutput(CheckedFunction f, GradCheckResult result)
    {
        using DisposeScope scope = torch.NewDisposeScope();
        (Tensor[] outputs, Tensor[] zeros) = f.DifferentiableOutputsWithZeroGrads(f.Evaluate());
        Tensor?[] grads;
        try
        {
            grads = Autograd.Grad(outputs, f.DiffInputTensors(), zeros, allowUnused: true);
        }
        catch (CustomAutogradException e)
        {
            f.Fail(result, GradCheckFailureKind.BackwardFailed, null, null, "backward failed with zero output gradients.", e);
            return;
        }
        for (int ii = 0; ii < f.DiffInputs.Length; ii++)
        {
            if (grads[ii] is not { } g)
                continue;
            int i = f.DiffInputs[ii];
            Tensor x = f.Input(i);
            string input = f.InputName(i);
            if (g.dtype != x.dtype)
            {
                f.Fail(result, GradCheckFailureKind.GradDtypeMismatch, null, i, $"the gradient of {input} is {g.dtype}, the input {x.dtype}.");
                return;
            }
            if (g.device_type != x.device_type || g.device_index != x.device_index)
            {
                f.Fail(result, GradCheckFailureKind.GradDeviceMismatch, null, i, $"the gradient of {input} is on {g.device}, the input on {x.device}.");
                return;
            }
            if (!g.shape.AsSpan().SequenceEqual(x.shape))
            {
                f.Fail(result, GradCheckFailureKind.GradShapeMismatch, null, i,
                       $"the gradient of {input} has shape {ShapeFormat.Format(g.shape)}, the input {ShapeFormat.Format(x.shape)}.");
                return;
            }
            if (g.numel() > 0 && !g.eq(KeptScalars.Zero).all().item<bool>())
            {
                f.Fail(result, GradCheckFailureKind.BackwardNotMultipliedByGradOutput, null, i,
                       $"backward is not multiplied by the output gradient: with all output gradients zero, the gradient of " +
                       $"{input} is not zero (max |value| {GradCheckFormat.Number(g.abs().max().to_type(ScalarType.Float64).item<double>())}).");
                return;
            }
        }
    }

    // PyTorch's _check_undefined_grad_support: backward with every output gradient undefined, then (with
    // several outputs) with one undefined at a time and the others zero, must not fail and must give
    // undefined or zero input gradients.
    internal static void UndefinedGrad(CheckedFunction f, GradCheckResult result)
    {
        int n = f.DiffOutputs.Length;
        int cases = n > 1 ? n + 1 : 1;
        for (int c = 0; c < cases; c++)
        {
            using DisposeScope scope = torch.NewDisposeScope();
            (Tensor[] outputs, Tensor[] zeros) = f.DifferentiableOutputsWithZeroGrads(f.Evaluate());
            for (int oo = 0; oo < n; oo++)
            {
                if (c == 0 || c - 1 == oo)
                    outputs[oo] = UndefinedGradFunction.Apply(outputs[oo]);
            }
            int? undefined = c > 0 ? f.DiffOutputs[c - 1] : null;
            string which = undefined is int u ? $"the gradient of {f.OutputName(u)}" : "every output gradient";
            Tensor?[] grads;
            try
            {
                grads = Autograd.Grad(outputs, f.DiffInputTensors(), zeros, allowUnused: true);
            }
            catch (CustomAutogradException e)
            {
                f.Fail(result, GradCheckFailureKind.UndefinedGradNotSupported, undefined, null,
                       $"backward failed when {which} was undefined (a custom Backward without materialised gradients receives " +
                       "null for it; set CheckUndefinedGrad = false to skip this check).", e);
                return;
            }
            for (int ii = 0; ii < f.DiffInputs.Length; ii++)
            {
                if (grads[ii] is { } g && g.numel() > 0 && !g.eq(KeptScalars.Zero).all().item<bool>())
                {
                    int i = f.DiffInputs[ii];
                    f.Fail(result, GradCheckFailureKind.UndefinedGradNotSupported, undefined, i,
                           $"expected all input gradients to be undefined or zero when {which} was undefined (the others zero), " +
                           $"but the gradient of {f.InputName(i)} is not.");
                    return;
                }
            }
        }
    }
}
