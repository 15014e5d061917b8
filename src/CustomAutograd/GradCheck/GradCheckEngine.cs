// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using CustomAutograd.Graph;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// The core shared by GradCheck and GradGradCheck: validates the inputs, replaces
// those that require grad by private copies, and runs the checks in PyTorch's order (the Jacobians in slow or
// fast mode, then the backward's contract), in float64, on the inputs' device.
// The copies have the same shape, strides, dtype and device, so the caller's tensors are never modified
// (PyTorch perturbs them in place). Null inputs, and inputs that do not require grad, are passed through
// unchanged and not differentiated.
internal static class GradCheckEngine
{
    internal static string DefaultInputName(int i) => "input " + i.ToString(CultureInfo.InvariantCulture);

    internal static string DefaultOutputName(int o) => "output " + o.ToString(CultureInfo.InvariantCulture);

    // Runs the whole check; throws GradCheckException on failure when the options say so.
    internal static GradCheckResult Run(string checkName, Func<Tensor?[], Tensor[]> function, IReadOnlyList<Tensor?> inputs,
                                        GradCheckOptions? options, Func<int, string> inputName, Func<int, string> outputName)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= GradCheckOptions.Default;
        options.Validate();

        GradCheckResult result;
        using (DisposeScope scope = torch.NewDisposeScope())
        using (torch.enable_grad())
        {
            var work = new Tensor?[inputs.Count];
            var diff = new List<int>();
            for (int i = 0; i < inputs.Count; i++)
            {
                Tensor? x = inputs[i];
                if (x is not null && x.IsInvalid)
                    throw new ObjectDisposedException(nameof(Tensor), $"inputs[{i}] ({inputName(i)}) has been disposed.");
                if (x is not { requires_grad: true })
                {
                    work[i] = x;
                    continue;
                }
                ValidateDifferentiableInput(x, inputName(i));
                work[i] = WorkingCopy(x);
                diff.Add(i);
            }
            if (diff.Count == 0)
            {
                throw new ArgumentException(
                    $"{checkName} expects at least one input tensor to require gradient, but none of the {inputs.Count} does.",
                    nameof(inputs));
            }
            result = Check(new CheckedFunction(checkName, function, work, diff.ToArray(), options, inputName, outputName));
        }

        if (!result.Passed && options.RaiseException)
            throw new GradCheckException(result);
        return result;
    }

    private static GradCheckResult Check(CheckedFunction f)
    {
        List<string> warnings;
        using (DisposeScope scope = torch.NewDisposeScope())
            warnings = PrecisionWarnings(f, f.EvaluateCenter());

        var result = new GradCheckResult(f.CheckName, f.Options, f.InputCount, f.DiffInputs.Length, f.OutputCount, f.DiffOutputs.Length);
        if (f.DiffOutputs.Length == 0)
            BackwardContractChecks.NoDifferentiableOutputs(f, result);
        else if (f.Options.FastMode)
            FastModeCheck.Run(f, result);
        else
            SlowModeCheck.Run(f, result);

        if (result.Passed && f.DiffOutputs.Length > 0)
            BackwardContractChecks.MultipliedByGradOutput(f, result);
        if (result.Passed && f.DiffOutputs.Length > 0 && f.Options.CheckUndefinedGrad)
            BackwardContractChecks.UndefinedGrad(f, result);

        result.Warnings = warnings.ToArray();
        result.LowPrecision = warnings.Count > 0;
        return result;
    }

    private static void ValidateDifferentiableInput(Tensor x, string name)
    {
        if (x.is_complex())
        {
            throw new NotSupportedException(
                $"{name} is complex ({x.dtype}); gradient checking of complex functions is not supported. " +
                "Check the real and imaginary parts as separate real inputs.");
        }
        if (x.is_sparse)
            throw new NotSupportedException($"{name} is a sparse tensor; gradient checking supports dense (strided) tensors only.");
        long[] shape = x.shape, strides = x.stride();
        for (int d = 0; d < shape.Length; d++)
        {
            if (strides[d] == 0 && shape[d] > 1)
            {
                throw new ArgumentException(
                    $"{name} has a dimension with stride 0 (shape {ShapeFormat.Format(shape)}, strides " +
                    $"{ShapeFormat.Format(strides)}), e.g. from expand(): its elements share memory, so they " +
                    "cannot be perturbed one at a time. Pass a contiguous copy (.contiguous()).", nameof(x));
            }
        }
    }

    // A leaf copy with the same shape, strides, dtype and device, requiring grad.
    private static Tensor WorkingCopy(Tensor x)
    {
        Tensor copy = torch.empty_strided(x.shape, x.stride(), dtype: x.dtype, device: x.device);
        using (torch.no_grad())
            copy.copy_(x.detach());
        return copy.requires_grad_(true);
    }

    // PyTorch's warnings for differentiable inputs and outputs that are not float64; each makes the
    // verdict unreliable (GradCheckResult.LowPrecision).
    private static List<string> PrecisionWarnings(CheckedFunction f, Tensor[] center)
    {
        var warnings = new List<string>();
        foreach (int i in f.DiffInputs)
        {
            ScalarType dtype = f.Input(i).dtype;
            if (dtype != ScalarType.Float64)
            {
                warnings.Add($"{f.InputName(i)} requires grad and is {dtype}, not Float64: finite differences " +
                             $"with eps {GradCheckFormat.Number(f.Options.Eps)} are inaccurate in this precision, so the " +
                             "verdict is unreliable. Check in Float64.");
            }
        }
        foreach (int o in f.DiffOutputs)
        {
            if (center[o].dtype != ScalarType.Float64)
            {
                warnings.Add($"{f.OutputName(o)} is {center[o].dtype}, not Float64: finite differences of it are inaccurate, " +
                             "so the verdict is unreliable.");
            }
        }
        return warnings;
    }
}
