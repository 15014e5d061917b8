// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Globalization;
using CustomAutograd.Graph;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// The implementation shared by <see cref="GradCheck"/> and <see cref="GradGradCheck"/>: compares the Jacobian
/// from backward (vector-Jacobian products with one-hot output gradients, one row at a time) with central finite
/// differences (one column at a time), in float64, on the inputs' device.
/// </summary>
/// <remarks>
/// The inputs that require grad are replaced by private copies with the same shape, strides and dtype, so the
/// caller's tensors are never modified (PyTorch perturbs them in place); each perturbation is an in-place write
/// into a zero-dimensional view of one element of such a copy.
/// </remarks>
internal sealed class GradCheckEngine
{
    /// <summary>Jacobians of a failing pair up to this many rows and columns are kept for the report.</summary>
    private const int ReportJacobianLimit = 16;

    private readonly string _checkName;
    private readonly Func<Tensor[], Tensor[]> _function;
    private readonly GradCheckOptions _options;
    private readonly Func<int, string> _inputName;
    private readonly Func<int, string> _outputName;
    private readonly Tensor[] _inputs;
    private readonly int[] _diffInputs;
    private readonly List<string> _warnings = new();
    private int _outputCount;
    private long[][] _outputShapes = Array.Empty<long[]>();
    private int[] _diffOutputs = Array.Empty<int>();
    private bool _lowPrecision;

    private GradCheckEngine(string checkName, Func<Tensor[], Tensor[]> function, Tensor[] inputs, int[] diffInputs,
                            GradCheckOptions options, Func<int, string> inputName, Func<int, string> outputName)
    {
        _checkName = checkName;
        _function = function;
        _inputs = inputs;
        _diffInputs = diffInputs;
        _options = options;
        _inputName = inputName;
        _outputName = outputName;
    }

    /// <summary>Runs the whole check; throws <see cref="GradCheckException"/> on failure when the options say so.</summary>
    internal static GradCheckResult Run(string checkName, Func<Tensor[], Tensor[]> function, IReadOnlyList<Tensor> inputs,
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
            var work = new Tensor[inputs.Count];
            var diff = new List<int>();
            for (int i = 0; i < inputs.Count; i++)
            {
                Tensor x = inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"inputs[{i}] is null.");
                if (x.IsInvalid)
                    throw new ObjectDisposedException(nameof(Tensor), $"inputs[{i}] ({inputName(i)}) has been disposed.");
                if (!x.requires_grad)
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

            var engine = new GradCheckEngine(checkName, function, work, diff.ToArray(), options, inputName, outputName);
            result = engine.Check();
        }

        if (!result.Passed && options.RaiseException)
            throw new GradCheckException(result);
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

    /// <summary>A leaf copy with the same shape, strides, dtype and device, requiring grad.</summary>
    private static Tensor WorkingCopy(Tensor x)
    {
        Tensor copy = torch.empty_strided(x.shape, x.stride(), dtype: x.dtype, device: x.device);
        using (torch.no_grad())
            copy.copy_(x.detach());
        return copy.requires_grad_(true);
    }

    private GradCheckResult Check()
    {
        // The evaluation at the unperturbed point: the outputs' count, shapes and differentiability.
        using (DisposeScope scope = torch.NewDisposeScope())
        {
            Tensor[] center = Evaluate();
            _outputCount = center.Length;
            _outputShapes = new long[center.Length][];
            var diffOutputs = new List<int>();
            for (int o = 0; o < center.Length; o++)
            {
                Tensor y = center[o];
                _outputShapes[o] = y.shape;
                if (!y.requires_grad)
                    continue;
                if (y.is_complex())
                {
                    throw new NotSupportedException(
                        $"{_outputName(o)} is complex ({y.dtype}); gradient checking of complex functions is not supported.");
                }
                diffOutputs.Add(o);
            }
            _diffOutputs = diffOutputs.ToArray();
            AddPrecisionWarnings(center);
        }

        var result = new GradCheckResult(_checkName, _options, _inputs.Length, _diffInputs.Length, _outputCount, _diffOutputs.Length);
        if (_diffOutputs.Length == 0)
            CheckNoDifferentiableOutputs(result);
        else if (_options.FastMode)
            CheckFast(result);
        else
            CheckSlow(result);

        if (result.Passed && _diffOutputs.Length > 0)
            CheckBackwardMultipliedByGradOutput(result);
        if (result.Passed && _diffOutputs.Length > 0 && _options.CheckUndefinedGrad)
            CheckUndefinedGrad(result);

        result.Warnings = _warnings.ToArray();
        result.LowPrecision = _lowPrecision;
        return result;
    }

    private void AddPrecisionWarnings(Tensor[] center)
    {
        foreach (int i in _diffInputs)
        {
            if (_inputs[i].dtype != ScalarType.Float64)
            {
                _lowPrecision = true;
                _warnings.Add($"{_inputName(i)} requires grad and is {_inputs[i].dtype}, not Float64: finite differences " +
                              $"with eps {GradCheckFormat.Number(_options.Eps)} are inaccurate in this precision, so the " +
                              "verdict is unreliable. Check in Float64.");
            }
        }
        foreach (int o in _diffOutputs)
        {
            if (center[o].dtype != ScalarType.Float64)
            {
                _lowPrecision = true;
                _warnings.Add($"{_outputName(o)} is {center[o].dtype}, not Float64: finite differences of it are inaccurate, " +
                              "so the verdict is unreliable.");
            }
        }
    }

    // ---------------------------------------------------------------- evaluation

    /// <summary>Calls the function on the working inputs and validates what it returns.</summary>
    private Tensor[] Evaluate()
    {
        Tensor[] outputs = _function((Tensor[])_inputs.Clone())
            ?? throw new InvalidOperationException($"{_checkName}: the function returned null instead of an array of outputs.");
        if (outputs.Length == 0)
            throw new InvalidOperationException($"{_checkName}: the function returned no output.");
        for (int o = 0; o < outputs.Length; o++)
        {
            if (outputs[o] is null)
                throw new InvalidOperationException($"{_checkName}: the function returned null as {_outputName(o)}.");
            if (outputs[o].IsInvalid)
                throw new InvalidOperationException($"{_checkName}: the function returned a disposed tensor as {_outputName(o)}.");
        }
        if (_outputShapes.Length > 0)
        {
            if (outputs.Length != _outputCount)
            {
                throw new InvalidOperationException(
                    $"{_checkName}: the function returned {outputs.Length} outputs after a perturbation, {_outputCount} before.");
            }
            for (int o = 0; o < outputs.Length; o++)
            {
                if (!SameShape(outputs[o].shape, _outputShapes[o]))
                {
                    throw new InvalidOperationException(
                        $"{_checkName}: {_outputName(o)} has shape {ShapeFormat.Format(outputs[o].shape)} after a perturbation, " +
                        $"{ShapeFormat.Format(_outputShapes[o])} before.");
                }
            }
        }
        return outputs;
    }

    /// <summary>Evaluates and returns the selected outputs as detached float64 vectors (copies: an output
    /// may be a view of an input, which the next perturbation changes).</summary>
    private Tensor[] EvaluateFlat(int[] outputs)
    {
        Tensor[] all = Evaluate();
        var flat = new Tensor[outputs.Length];
        for (int k = 0; k < outputs.Length; k++)
            flat[k] = all[outputs[k]].detach().reshape(-1).to_type(ScalarType.Float64, copy: true);
        return flat;
    }

    private static bool SameShape(long[] a, long[] b)
    {
        if (a.Length != b.Length)
            return false;
        for (int d = 0; d < a.Length; d++)
        {
            if (a[d] != b[d])
                return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- slow mode

    private void CheckSlow(GradCheckResult result)
    {
        Tensor[,] numerical = NumericalJacobians(_diffInputs, _diffOutputs);
        (Tensor[,]? analytical, double[,] nondet) = AnalyticalJacobians(_diffOutputs, result);
        if (analytical is null)
            return;

        var mismatches = new List<GradCheckMismatch>();
        var jacobians = new List<GradCheckJacobian>();
        for (int oo = 0; oo < _diffOutputs.Length; oo++)
        {
            for (int ii = 0; ii < _diffInputs.Length; ii++)
            {
                int o = _diffOutputs[oo], i = _diffInputs[ii];
                GradCheckJacobian? jacobian = _options.ReturnJacobians ? ToManaged(o, i, numerical[oo, ii], analytical[oo, ii]) : null;
                if (jacobian is not null)
                    jacobians.Add(jacobian);
                GradCheckMismatch? m = Compare(o, i, numerical[oo, ii], analytical[oo, ii], onlyIfFailing: true);
                if (m is not null)
                {
                    m.Jacobian = jacobian ?? SmallJacobian(o, i, numerical[oo, ii], analytical[oo, ii]);
                    mismatches.Add(m);
                }
            }
        }
        result.Jacobians = jacobians.ToArray();
        if (mismatches.Count > 0)
        {
            FailMismatch(result, mismatches);
            return;
        }
        for (int oo = 0; oo < _diffOutputs.Length; oo++)
        {
            for (int ii = 0; ii < _diffInputs.Length; ii++)
            {
                if (nondet[oo, ii] > _options.NondetTol)
                {
                    FailNotReentrant(result, _diffOutputs[oo], _diffInputs[ii], nondet[oo, ii]);
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Finite differences: for each element of each selected input, <c>(f(x + eps e_k) - f(x - eps e_k)) / (2 eps)</c>
    /// becomes column k of that input's Jacobian with each selected output. Returns [output, input] tensors of
    /// shape [output numel, input numel], float64, on the input's device.
    /// </summary>
    private Tensor[,] NumericalJacobians(int[] inputs, int[] outputs)
    {
        var jac = new Tensor[outputs.Length, inputs.Length];
        for (int oo = 0; oo < outputs.Length; oo++)
        {
            for (int ii = 0; ii < inputs.Length; ii++)
                jac[oo, ii] = NewJacobian(outputs[oo], inputs[ii]);
        }
        double eps = _options.Eps;
        for (int ii = 0; ii < inputs.Length; ii++)
        {
            Tensor x = _inputs[inputs[ii]];
            long numel = x.numel();
            if (numel == 0)
                continue;
            using Tensor alias = x.detach();
            long[] shape = x.shape, strides = x.stride();
            long offset = x.storage_offset();
            var index = new long[shape.Length];
            for (long k = 0; k < numel; k++)
            {
                using DisposeScope step = torch.NewDisposeScope();
                Unravel(k, shape, index);
                long position = offset;
                for (int d = 0; d < shape.Length; d++)
                    position += index[d] * strides[d];
                Tensor element = alias.as_strided(Array.Empty<long>(), Array.Empty<long>(), position);
                Tensor original = element.clone();
                element.copy_(original - eps);
                Tensor[] minus = EvaluateFlat(outputs);
                element.copy_(original + eps);
                Tensor[] plus = EvaluateFlat(outputs);
                element.copy_(original);
                for (int oo = 0; oo < outputs.Length; oo++)
                    jac[oo, ii].select(1, k).copy_((plus[oo] - minus[oo]) / (2 * eps));
            }
        }
        return jac;
    }

    /// <summary>
    /// Backward with one-hot output gradients: row r of each input's Jacobian with output o is the gradient of
    /// that input for the output gradient e_r, the other differentiable outputs getting zero gradients (not
    /// undefined ones: how a Backward copes with those is <see cref="CheckUndefinedGrad"/>'s job, so this check
    /// tests only the derivatives). Each backward runs twice; <c>Nondet</c> is the largest difference
    /// between the two runs per pair (NaN in both counts as equal). Returns a null Jacobian after recording a
    /// failure in <paramref name="result"/>.
    /// </summary>
    private (Tensor[,]? Jacobians, double[,] Nondet) AnalyticalJacobians(int[] outputs, GradCheckResult result)
    {
        var jac = new Tensor[outputs.Length, _diffInputs.Length];
        var nondet = new double[outputs.Length, _diffInputs.Length];
        Tensor[] diffInputs = DiffInputTensors();
        using DisposeScope evaluation = torch.NewDisposeScope();
        Tensor[] center = Evaluate();
        (Tensor[] ys, Tensor[] gradOutputs) = DifferentiableOutputsWithZeroGrads(center);
        for (int oo = 0; oo < outputs.Length; oo++)
        {
            int o = outputs[oo];
            int position = Array.IndexOf(_diffOutputs, o);
            Tensor y = center[o];
            for (int ii = 0; ii < _diffInputs.Length; ii++)
                jac[oo, ii] = NewJacobian(o, _diffInputs[ii]).MoveToOuterDisposeScope();
            Tensor oneHot = gradOutputs[position];
            Tensor flat = oneHot.view(-1);
            long rows = y.numel();
            for (long r = 0; r < rows; r++)
            {
                using DisposeScope step = torch.NewDisposeScope();
                Tensor hot = flat[r];
                hot.fill_(1);
                Tensor?[]? first = Backward(ys, o, diffInputs, gradOutputs, result);
                Tensor?[]? second = first is null ? null : Backward(ys, o, diffInputs, gradOutputs, result);
                if (first is null || second is null)
                    return (null, nondet);
                for (int ii = 0; ii < _diffInputs.Length; ii++)
                {
                    if (!CheckGradient(first[ii], o, _diffInputs[ii], _options.CheckGradDtypes, result))
                        return (null, nondet);
                    Tensor? g1 = first[ii], g2 = second[ii];
                    if (g1 is not null)
                        jac[oo, ii].select(0, r).copy_(g1.detach().reshape(-1));
                    if ((g1 is not null || g2 is not null) && _inputs[_diffInputs[ii]].numel() > 0)
                        nondet[oo, ii] = Math.Max(nondet[oo, ii], MaxDifference(g1, g2));
                }
                hot.fill_(0);
            }
        }
        return (jac, nondet);
    }

    /// <summary>The differentiable outputs and a zero (contiguous) gradient for each.</summary>
    private (Tensor[] Outputs, Tensor[] Zeros) DifferentiableOutputsWithZeroGrads(Tensor[] center)
    {
        var ys = new Tensor[_diffOutputs.Length];
        var zeros = new Tensor[_diffOutputs.Length];
        for (int k = 0; k < ys.Length; k++)
        {
            ys[k] = center[_diffOutputs[k]];
            zeros[k] = torch.zeros(ys[k].shape, dtype: ys[k].dtype, device: ys[k].device);
        }
        return (ys, zeros);
    }

    /// <summary>The largest element-wise difference of two gradients (null meaning zeros; NaN in both is equal,
    /// NaN in one is infinitely far).</summary>
    private static double MaxDifference(Tensor? g1, Tensor? g2)
    {
        Tensor a = g1 is null ? torch.zeros_like(g2!, dtype: ScalarType.Float64) : g1.detach().to_type(ScalarType.Float64);
        Tensor b = g2 is null ? torch.zeros_like(g1!, dtype: ScalarType.Float64) : g2.detach().to_type(ScalarType.Float64);
        Tensor difference = torch.where(a.isnan() & b.isnan(), torch.zeros_like(a), (a - b).abs());
        return difference.nan_to_num(double.PositiveInfinity, double.PositiveInfinity, double.PositiveInfinity).max().item<double>();
    }

    /// <summary>One vector-Jacobian product of the differentiable outputs (all output gradients but that of
    /// output <paramref name="o"/> being zero); null after recording a failure.</summary>
    private Tensor?[]? Backward(Tensor[] ys, int o, Tensor[] diffInputs, Tensor[] gradOutputs, GradCheckResult result)
    {
        try
        {
            return Autograd.Grad(ys, diffInputs, gradOutputs, retainGraph: true, allowUnused: true);
        }
        catch (CustomAutogradException e)
        {
            result.FailureKind = GradCheckFailureKind.BackwardFailed;
            result.OutputIndex = o;
            result.OutputName = _outputName(o);
            result.Exception = e;
            result.FailureMessage = $"backward failed while computing the gradient of {_outputName(o)}.";
            return null;
        }
    }

    /// <summary>Checks a gradient's shape (and dtype when asked) against its input's; records a failure.</summary>
    private bool CheckGradient(Tensor? g, int o, int i, bool checkDtype, GradCheckResult result)
    {
        if (g is null)
            return true;
        Tensor x = _inputs[i];
        if (!SameShape(g.shape, x.shape))
        {
            Fail(result, GradCheckFailureKind.GradShapeMismatch, o, i,
                 $"the gradient of {_inputName(i)} has shape {ShapeFormat.Format(g.shape)}, the input {ShapeFormat.Format(x.shape)} " +
                 $"(backward of {_outputName(o)}).");
            return false;
        }
        if (checkDtype && g.dtype != x.dtype)
        {
            Fail(result, GradCheckFailureKind.GradDtypeMismatch, o, i,
                 $"the gradient of {_inputName(i)} is {g.dtype}, the input {x.dtype} (backward of {_outputName(o)}).");
            return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- fast mode

    private void CheckFast(GradCheckResult result)
    {
        using Generator? generator = _options.Seed is long seed ? new Generator(unchecked((ulong)seed), torch.CPU) : null;
        var u = new Tensor?[_diffInputs.Length];
        for (int ii = 0; ii < _diffInputs.Length; ii++)
            u[ii] = UnitVector(_inputs[_diffInputs[ii]], generator);
        Tensor[] diffInputs = DiffInputTensors();
        var failing = new List<(int OutputPosition, int InputPosition, double Numerical, double Analytical, double Tolerance)>();
        var nondet = new double[_diffOutputs.Length, _diffInputs.Length];

        using (DisposeScope evaluation = torch.NewDisposeScope())
        {
            // Analytical: one backward per output with gradient v, dotted with each u.
            Tensor[] center = Evaluate();
            (Tensor[] ys, Tensor[] zeros) = DifferentiableOutputsWithZeroGrads(center);
            var analytical = new double[_diffOutputs.Length, _diffInputs.Length];
            var v = new Tensor?[_diffOutputs.Length];
            for (int oo = 0; oo < _diffOutputs.Length; oo++)
            {
                int o = _diffOutputs[oo];
                Tensor y = center[o];
                v[oo] = UnitVector(y, generator);
                if (v[oo] is null)
                    continue;
                var gradOutputs = (Tensor[])zeros.Clone();
                gradOutputs[oo] = v[oo]!.reshape(y.shape).to(y.dtype, y.device);
                Tensor?[]? first = Backward(ys, o, diffInputs, gradOutputs, result);
                Tensor?[]? second = first is null ? null : Backward(ys, o, diffInputs, gradOutputs, result);
                if (first is null || second is null)
                    return;
                for (int ii = 0; ii < _diffInputs.Length; ii++)
                {
                    int i = _diffInputs[ii];
                    if (!CheckGradient(first[ii], o, i, _options.CheckGradDtypes, result))
                        return;
                    if (u[ii] is null)
                        continue;
                    double a1 = Project(first[ii], u[ii]!), a2 = Project(second[ii], u[ii]!);
                    nondet[oo, ii] = double.IsNaN(a1) && double.IsNaN(a2) ? 0
                        : double.IsNaN(a1 - a2) ? double.PositiveInfinity : Math.Abs(a1 - a2);
                    analytical[oo, ii] = a1;
                }
            }

            // Numerical: one pair of evaluations per input, perturbed along u.
            double eps = _options.Eps;
            for (int ii = 0; ii < _diffInputs.Length; ii++)
            {
                if (u[ii] is null)
                    continue;
                using DisposeScope step = torch.NewDisposeScope();
                Tensor x = _inputs[_diffInputs[ii]];
                using Tensor alias = x.detach();
                Tensor delta = (u[ii]! * eps).reshape(x.shape).to(x.dtype, x.device);
                Tensor original = alias.clone();
                alias.copy_(original - delta);
                Tensor[] minus = EvaluateFlat(_diffOutputs);
                alias.copy_(original + delta);
                Tensor[] plus = EvaluateFlat(_diffOutputs);
                alias.copy_(original);
                for (int oo = 0; oo < _diffOutputs.Length; oo++)
                {
                    if (v[oo] is null)
                        continue;
                    Tensor ju = (plus[oo] - minus[oo]) / (2 * eps);
                    double n = ju.dot(v[oo]!.to(ju.device)).item<double>();
                    double a = analytical[oo, ii];
                    double atol = _options.Atol * u[ii]!.sum().item<double>() * v[oo]!.sum().item<double>();
                    double tolerance = atol + _options.Rtol * Math.Abs(n);
                    if (!(Math.Abs(a - n) <= tolerance))
                        failing.Add((oo, ii, n, a, tolerance));
                }
            }
        }

        if (failing.Count == 0)
        {
            for (int oo = 0; oo < _diffOutputs.Length; oo++)
            {
                for (int ii = 0; ii < _diffInputs.Length; ii++)
                {
                    if (nondet[oo, ii] > _options.NondetTol)
                    {
                        FailNotReentrant(result, _diffOutputs[oo], _diffInputs[ii], nondet[oo, ii]);
                        return;
                    }
                }
            }
            return;
        }
        // Re-check the failing pairs element by element, for a report naming the worst element.
        var mismatches = new List<GradCheckMismatch>();
        foreach ((int oo, int ii, double n, double a, double tolerance) in failing)
        {
            using DisposeScope recheck = torch.NewDisposeScope();
            int o = _diffOutputs[oo], i = _diffInputs[ii];
            Tensor numerical = NumericalJacobians(new[] { i }, new[] { o })[0, 0];
            var probe = new GradCheckResult(_checkName, _options, 0, 0, 0, 0);
            Tensor[,]? analytical = AnalyticalJacobians(new[] { o }, probe).Jacobians;
            if (analytical is null)
            {
                CopyFailure(probe, result);
                return;
            }
            GradCheckMismatch m = Compare(o, i, numerical, analytical[0, ii], onlyIfFailing: false)!;
            m.ProjectedNumerical = n;
            m.ProjectedAnalytical = a;
            m.ProjectedTolerance = tolerance;
            m.Jacobian = SmallJacobian(o, i, numerical, analytical[0, ii]);
            mismatches.Add(m);
        }
        FailMismatch(result, mismatches);
    }

    /// <summary>A random unit vector (uniform in [0, 1), normalised) with <paramref name="like"/>'s element count,
    /// float64 on its device; null for an empty tensor.</summary>
    private static Tensor? UnitVector(Tensor like, Generator? generator)
    {
        long n = like.numel();
        if (n == 0)
            return null;
        Tensor r = torch.rand(new[] { n }, dtype: ScalarType.Float64, generator: generator);
        r.div_(r.norm());
        return r.to(like.device);
    }

    private static double Project(Tensor? g, Tensor u) =>
        g is null ? 0.0 : g.detach().reshape(-1).to_type(ScalarType.Float64).dot(u.to(g.device)).item<double>();

    private static void CopyFailure(GradCheckResult from, GradCheckResult to)
    {
        to.FailureKind = from.FailureKind;
        to.FailureMessage = from.FailureMessage;
        to.InputIndex = from.InputIndex;
        to.InputName = from.InputName;
        to.OutputIndex = from.OutputIndex;
        to.OutputName = from.OutputName;
        to.Exception = from.Exception;
    }

    // ---------------------------------------------------------------- other checks

    /// <summary>PyTorch's check for functions without differentiable outputs: the outputs must not change
    /// when the inputs are perturbed.</summary>
    private void CheckNoDifferentiableOutputs(GradCheckResult result)
    {
        var floating = new List<int>();
        using (DisposeScope probe = torch.NewDisposeScope())
        {
            Tensor[] outputs = Evaluate();
            for (int o = 0; o < outputs.Length; o++)
            {
                if (outputs[o].is_floating_point())
                    floating.Add(o);
            }
        }
        if (floating.Count == 0)
            return;
        Tensor[,] numerical = NumericalJacobians(_diffInputs, floating.ToArray());
        for (int oo = 0; oo < floating.Count; oo++)
        {
            for (int ii = 0; ii < _diffInputs.Length; ii++)
            {
                Tensor n = numerical[oo, ii];
                if (n.numel() == 0)
                    continue;
                double max = n.abs().max().item<double>();
                if (!(max <= _options.Atol))
                {
                    Fail(result, GradCheckFailureKind.NonZeroNumericalGradient, floating[oo], _diffInputs[ii],
                         $"no output requires grad, but the numerical gradient of {_outputName(floating[oo])} with respect to " +
                         $"{_inputName(_diffInputs[ii])} is not zero (max |value| {GradCheckFormat.Number(max)}): the function " +
                         "is differentiable but its outputs are not connected to the graph.");
                    return;
                }
            }
        }
    }

    /// <summary>PyTorch's <c>_test_backward_mul_by_grad_output</c>: backward with all output gradients zero must
    /// give zero input gradients of the inputs' dtype, device and shape.</summary>
    private void CheckBackwardMultipliedByGradOutput(GradCheckResult result)
    {
        using DisposeScope scope = torch.NewDisposeScope();
        Tensor[] center = Evaluate();
        var outputs = new Tensor[_diffOutputs.Length];
        var zeros = new Tensor[_diffOutputs.Length];
        for (int oo = 0; oo < _diffOutputs.Length; oo++)
        {
            outputs[oo] = center[_diffOutputs[oo]];
            zeros[oo] = torch.zeros_like(outputs[oo]);
        }
        Tensor?[] grads;
        try
        {
            grads = Autograd.Grad(outputs, DiffInputTensors(), zeros, allowUnused: true);
        }
        catch (CustomAutogradException e)
        {
            result.FailureKind = GradCheckFailureKind.BackwardFailed;
            result.Exception = e;
            result.FailureMessage = "backward failed with zero output gradients.";
            return;
        }
        for (int ii = 0; ii < _diffInputs.Length; ii++)
        {
            Tensor? g = grads[ii];
            int i = _diffInputs[ii];
            if (g is null)
                continue;
            Tensor x = _inputs[i];
            if (g.dtype != x.dtype)
            {
                Fail(result, GradCheckFailureKind.GradDtypeMismatch, null, i,
                     $"the gradient of {_inputName(i)} is {g.dtype}, the input {x.dtype}.");
                return;
            }
            if (g.device_type != x.device_type || g.device_index != x.device_index)
            {
                Fail(result, GradCheckFailureKind.GradDeviceMismatch, null, i,
                     $"the gradient of {_inputName(i)} is on {g.device}, the input on {x.device}.");
                return;
            }
            if (!SameShape(g.shape, x.shape))
            {
                Fail(result, GradCheckFailureKind.GradShapeMismatch, null, i,
                     $"the gradient of {_inputName(i)} has shape {ShapeFormat.Format(g.shape)}, the input {ShapeFormat.Format(x.shape)}.");
                return;
            }
            if (g.numel() > 0 && !g.eq(0).all().item<bool>())
            {
                Fail(result, GradCheckFailureKind.BackwardNotMultipliedByGradOutput, null, i,
                     $"backward is not multiplied by the output gradient: with all output gradients zero, the gradient of " +
                     $"{_inputName(i)} is not zero (max |value| {GradCheckFormat.Number(g.abs().max().to_type(ScalarType.Float64).item<double>())}).");
                return;
            }
        }
    }

    /// <summary>
    /// PyTorch's <c>_check_undefined_grad_support</c>: backward with every output gradient undefined, then (with
    /// several outputs) with one undefined at a time and the others zero, must not fail and must give
    /// undefined or zero input gradients.
    /// </summary>
    private void CheckUndefinedGrad(GradCheckResult result)
    {
        int n = _diffOutputs.Length;
        int cases = n > 1 ? n + 1 : 1;
        for (int c = 0; c < cases; c++)
        {
            using DisposeScope scope = torch.NewDisposeScope();
            Tensor[] center = Evaluate();
            var outputs = new Tensor[n];
            var zeros = new Tensor[n];
            for (int oo = 0; oo < n; oo++)
            {
                Tensor y = center[_diffOutputs[oo]];
                bool undefine = c == 0 || c - 1 == oo;
                outputs[oo] = undefine ? UndefinedGradFunction.Apply(y) : y;
                zeros[oo] = torch.zeros_like(y);
            }
            string which = c == 0 ? "every output gradient" : $"the gradient of {_outputName(_diffOutputs[c - 1])}";
            Tensor?[] grads;
            try
            {
                grads = Autograd.Grad(outputs, DiffInputTensors(), zeros, allowUnused: true);
            }
            catch (CustomAutogradException e)
            {
                result.FailureKind = GradCheckFailureKind.UndefinedGradNotSupported;
                result.Exception = e;
                if (c > 0)
                {
                    result.OutputIndex = _diffOutputs[c - 1];
                    result.OutputName = _outputName(_diffOutputs[c - 1]);
                }
                result.FailureMessage =
                    $"backward failed when {which} was undefined (a custom Backward without materialised gradients receives " +
                    "null for it; set CheckUndefinedGrad = false to skip this check).";
                return;
            }
            for (int ii = 0; ii < _diffInputs.Length; ii++)
            {
                Tensor? g = grads[ii];
                if (g is not null && g.numel() > 0 && !g.eq(0).all().item<bool>())
                {
                    int i = _diffInputs[ii];
                    Fail(result, GradCheckFailureKind.UndefinedGradNotSupported, c > 0 ? _diffOutputs[c - 1] : null, i,
                         $"expected all input gradients to be undefined or zero when {which} was undefined (the others zero), " +
                         $"but the gradient of {_inputName(i)} is not.");
                    return;
                }
            }
        }
    }

    /// <summary>Passes its input through and gives its input an undefined gradient, as PyTorch's
    /// <c>torch._C._functions.UndefinedGrad</c>.</summary>
    private static readonly UnaryFunction UndefinedGradFunction = AutogradFunction.Create(
        "GradCheck.UndefinedGrad",
        static (ctx, x) => x.clone(),
        static (ctx, grad) => null,
        new AutogradFunctionOptions { MaterializeGrads = false });

    // ---------------------------------------------------------------- comparison and reporting

    private Tensor NewJacobian(int o, int i) =>
        torch.zeros(new[] { ShapeNumel(_outputShapes[o]), _inputs[i].numel() }, dtype: ScalarType.Float64,
                    device: _inputs[i].device);

    private static long ShapeNumel(long[] shape)
    {
        long n = 1;
        foreach (long d in shape)
            n *= d;
        return n;
    }

    private Tensor[] DiffInputTensors()
    {
        var tensors = new Tensor[_diffInputs.Length];
        for (int ii = 0; ii < _diffInputs.Length; ii++)
            tensors[ii] = _inputs[_diffInputs[ii]];
        return tensors;
    }

    /// <summary>
    /// Compares two Jacobians element-wise with <c>|a - n| &lt;= atol + rtol |n|</c> (NaN fails) on their device and
    /// describes the worst element. Returns null when all pass and <paramref name="onlyIfFailing"/> is set.
    /// </summary>
    private GradCheckMismatch? Compare(int o, int i, Tensor numerical, Tensor analytical, bool onlyIfFailing)
    {
        long count = numerical.numel();
        if (count == 0)
            return null;
        using DisposeScope scope = torch.NewDisposeScope();
        Tensor a = analytical.to(numerical.device);
        Tensor difference = (a - numerical).abs();
        Tensor tolerance = numerical.abs() * _options.Rtol + _options.Atol;
        Tensor within = difference <= tolerance;
        long failing = count - within.sum().item<long>();
        if (failing == 0 && onlyIfFailing)
            return null;
        Tensor ratio = torch.where(difference == 0, torch.zeros_like(difference), difference / tolerance)
                            .nan_to_num(double.PositiveInfinity, double.PositiveInfinity, double.NegativeInfinity);
        long worst = ratio.reshape(-1).argmax().item<long>();
        long columns = numerical.shape[1];
        long row = worst / columns, column = worst % columns;
        double n = numerical[row, column].item<double>();
        double an = a[row, column].item<double>();
        var outputIndex = new long[_outputShapes[o].Length];
        var inputIndex = new long[_inputs[i].dim()];
        Unravel(row, _outputShapes[o], outputIndex);
        Unravel(column, _inputs[i].shape, inputIndex);
        return new GradCheckMismatch(o, _outputName(o), i, _inputName(i), row, column, outputIndex, inputIndex,
                                     n, an, _options.Atol + _options.Rtol * Math.Abs(n), failing, count);
    }

    private GradCheckJacobian? SmallJacobian(int o, int i, Tensor numerical, Tensor analytical) =>
        numerical.shape[0] <= ReportJacobianLimit && numerical.shape[1] <= ReportJacobianLimit
            ? ToManaged(o, i, numerical, analytical)
            : null;

    private GradCheckJacobian ToManaged(int o, int i, Tensor numerical, Tensor analytical) =>
        new(o, _outputName(o), i, _inputName(i), ToArray(numerical), ToArray(analytical));

    private static double[,] ToArray(Tensor matrix)
    {
        int rows = checked((int)matrix.shape[0]), columns = checked((int)matrix.shape[1]);
        var array = new double[rows, columns];
        if (rows * columns == 0)
            return array;
        using Tensor cpu = matrix.detach().cpu().contiguous();
        double[] values = cpu.data<double>().ToArray();
        Buffer.BlockCopy(values, 0, array, 0, values.Length * sizeof(double));
        return array;
    }

    private static void Unravel(long flat, long[] shape, long[] index)
    {
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = shape[d] == 0 ? 0 : flat % shape[d];
            flat = shape[d] == 0 ? 0 : flat / shape[d];
        }
    }

    private void FailMismatch(GradCheckResult result, List<GradCheckMismatch> mismatches)
    {
        GradCheckMismatch first = mismatches[0];
        result.Mismatches = mismatches.ToArray();
        Fail(result, GradCheckFailureKind.JacobianMismatch, first.OutputIndex, first.InputIndex,
             $"Jacobian mismatch for {first.OutputName} with respect to {first.InputName}.");
    }

    private void FailNotReentrant(GradCheckResult result, int o, int i, double difference) =>
        Fail(result, GradCheckFailureKind.BackwardNotReentrant, o, i,
             "backward is not reentrant: running it twice with the same input and output gradient gave results " +
             $"{GradCheckFormat.Number(difference)} apart (gradient of {_inputName(i)}, backward of {_outputName(o)}); " +
             $"the tolerance for nondeterminism (NondetTol) is {GradCheckFormat.Number(_options.NondetTol)}.");

    private void Fail(GradCheckResult result, GradCheckFailureKind kind, int? o, int? i, string message)
    {
        result.FailureKind = kind;
        result.FailureMessage = message;
        result.OutputIndex = o;
        result.OutputName = o is int oi ? _outputName(oi) : null;
        result.InputIndex = i;
        result.InputName = i is int ii ? _inputName(ii) : null;
    }

    internal static string DefaultInputName(int i) => "input " + i.ToString(CultureInfo.InvariantCulture);

    internal static string DefaultOutputName(int o) => "output " + o.ToString(CultureInfo.InvariantCulture);
}
